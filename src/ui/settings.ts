/**
 * Sampling and prompt settings of the page: read from the URL (`?temperature=0&max_tokens=64`, shareable), shown
 * and edited in the settings form, turned into the `ChatRequest` fields the engine takes.
 */
import { APP_DEFAULTS } from '../text/sampler';
import type { ImagePosition } from '../text/prompt';
import type { ChatRequest } from '../types';

export interface PageSettings {
  /** 0 ⇒ greedy (argmax). */
  temperature: number;
  topP: number;
  maxTokens: number;
  presencePenalty: number;
  frequencyPenalty: number;
  /** Where the image goes in a v6.0 prompt. */
  position: ImagePosition;
  /** v6.0 bidirectional image scan. */
  bidirectional: boolean;
}

/** The official app's sampling (spec §9.2, unclamped temperature), 512 new tokens, middle sandwich, bidirectional. */
export const DEFAULT_SETTINGS: Readonly<PageSettings> = Object.freeze({
  temperature: APP_DEFAULTS.temperature,
  topP: APP_DEFAULTS.topP,
  maxTokens: 512,
  presencePenalty: APP_DEFAULTS.alphaPresence,
  frequencyPenalty: APP_DEFAULTS.alphaFrequency,
  position: 'middle',
  bidirectional: true,
});

type NumericKey = 'temperature' | 'topP' | 'maxTokens' | 'presencePenalty' | 'frequencyPenalty';

/** URL query name, form field name and allowed range of each numeric setting. */
const NUMERIC: Record<NumericKey, { param: string; min: number; max: number; integer?: boolean }> = {
  temperature: { param: 'temperature', min: 0, max: 5 },
  topP: { param: 'top_p', min: 0, max: 1 },
  maxTokens: { param: 'max_tokens', min: 1, max: 65536, integer: true },
  presencePenalty: { param: 'presence_penalty', min: 0, max: 5 },
  frequencyPenalty: { param: 'frequency_penalty', min: 0, max: 5 },
};
const POSITION_PARAM = 'image_position';
const BIDI_PARAM = 'bidirectional';
const POSITIONS: readonly ImagePosition[] = ['first', 'middle', 'last'];

function parseNumber(key: NumericKey, raw: string): number | null {
  const spec = NUMERIC[key];
  const v = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(v) || v < spec.min || v > spec.max || (spec.integer && !Number.isInteger(v))) return null;
  return v;
}

function parseBool(raw: string): boolean | null {
  const s = raw.trim().toLowerCase();
  if (['1', 'true', 'on', 'yes'].includes(s)) return true;
  if (['0', 'false', 'off', 'no'].includes(s)) return false;
  return null;
}

/**
 * Settings given in a query string; invalid values are skipped with a warning for the page.
 * @example settingsFromQuery(new URLSearchParams('temperature=0&max_tokens=8')) // { settings: { temperature: 0, maxTokens: 8 }, warnings: [] }
 */
export function settingsFromQuery(q: URLSearchParams): { settings: Partial<PageSettings>; warnings: string[] } {
  const settings: Partial<PageSettings> = {};
  const warnings: string[] = [];
  for (const key of Object.keys(NUMERIC) as NumericKey[]) {
    const { param, min, max, integer } = NUMERIC[key];
    const raw = q.get(param);
    if (raw === null) continue;
    const v = parseNumber(key, raw);
    if (v === null) warnings.push(`Ignored ${param}=${raw}: expected ${integer ? 'an integer' : 'a number'} from ${min} to ${max}.`);
    else settings[key] = v;
  }
  const pos = q.get(POSITION_PARAM);
  if (pos !== null) {
    if ((POSITIONS as string[]).includes(pos)) settings.position = pos as ImagePosition;
    else warnings.push(`Ignored ${POSITION_PARAM}=${pos}: expected first, middle or last.`);
  }
  const bidi = q.get(BIDI_PARAM);
  if (bidi !== null) {
    const v = parseBool(bidi);
    if (v === null) warnings.push(`Ignored ${BIDI_PARAM}=${bidi}: expected 1 or 0.`);
    else settings.bidirectional = v;
  }
  return { settings, warnings };
}

/** Write the settings that differ from the defaults into `q` (and remove the others), for shareable links. */
export function settingsToQuery(s: PageSettings, q: URLSearchParams): void {
  for (const key of Object.keys(NUMERIC) as NumericKey[]) {
    if (s[key] === DEFAULT_SETTINGS[key]) q.delete(NUMERIC[key].param);
    else q.set(NUMERIC[key].param, String(s[key]));
  }
  if (s.position === DEFAULT_SETTINGS.position) q.delete(POSITION_PARAM);
  else q.set(POSITION_PARAM, s.position);
  if (s.bidirectional === DEFAULT_SETTINGS.bidirectional) q.delete(BIDI_PARAM);
  else q.set(BIDI_PARAM, s.bidirectional ? '1' : '0');
}

/** The request fields for these settings (position and bidirectional matter only for a turn with an image). */
export function requestSettings(s: PageSettings): Pick<ChatRequest, 'sampler' | 'maxTokens' | 'position' | 'bidirectional'> {
  return {
    sampler: { temperature: s.temperature, topP: s.topP, alphaPresence: s.presencePenalty, alphaFrequency: s.frequencyPenalty },
    maxTokens: s.maxTokens,
    position: s.position,
    // Only an explicit change is sent: the engine picks the default per checkpoint version (v6.0 on, v7.00 off).
    ...(s.bidirectional !== DEFAULT_SETTINGS.bidirectional ? { bidirectional: s.bidirectional } : {}),
  };
}

/**
 * The settings form: one control per setting, named as the URL parameters. Invalid entries are marked invalid and
 * the last valid value is used.
 */
export class SettingsForm {
  private value: PageSettings;

  constructor(
    private readonly form: HTMLFormElement,
    initial: PageSettings,
  ) {
    this.value = { ...initial };
    this.show(initial);
    form.addEventListener('submit', (e) => e.preventDefault());
    form.addEventListener('input', () => this.read());
    form.addEventListener('change', () => this.read());
  }

  /** The current settings. */
  get(): PageSettings {
    return { ...this.value };
  }

  /** Call `fn` after every valid change. */
  onChange(fn: (s: PageSettings) => void): void {
    this.form.addEventListener('change', () => fn(this.get()));
  }

  private field<T extends HTMLElement>(name: string): T {
    const el = this.form.elements.namedItem(name);
    if (!el) throw new Error(`settings form has no field '${name}'`);
    return el as T;
  }

  private show(s: PageSettings): void {
    for (const key of Object.keys(NUMERIC) as NumericKey[]) this.field<HTMLInputElement>(NUMERIC[key].param).value = String(s[key]);
    this.field<HTMLSelectElement>(POSITION_PARAM).value = s.position;
    this.field<HTMLInputElement>(BIDI_PARAM).checked = s.bidirectional;
  }

  private read(): void {
    for (const key of Object.keys(NUMERIC) as NumericKey[]) {
      const input = this.field<HTMLInputElement>(NUMERIC[key].param);
      const v = parseNumber(key, input.value);
      const { min, max, integer } = NUMERIC[key];
      input.setCustomValidity(v === null ? `Enter ${integer ? 'an integer' : 'a number'} from ${min} to ${max}.` : '');
      input.setAttribute('aria-invalid', String(v === null));
      if (v !== null) this.value[key] = v;
    }
    const pos = this.field<HTMLSelectElement>(POSITION_PARAM).value;
    if ((POSITIONS as string[]).includes(pos)) this.value.position = pos as ImagePosition;
    this.value.bidirectional = this.field<HTMLInputElement>(BIDI_PARAM).checked;
  }
}
