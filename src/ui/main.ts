/**
 * The chat page: a thin UI over `createVisualRwkv` (the engine runs in a Web Worker).
 *
 * - WebGPU is checked first (adapter name + a one-kernel self-test); without it the page says where WebGPU works.
 * - Model and encoder come from a URL or a local file; `?model=<url>&encoder=<url>` preloads both. Sampling settings
 *   come from the settings form and the URL (`temperature`, `top_p`, `max_tokens`, `presence_penalty`,
 *   `frequency_penalty`, `image_position`, `bidirectional`); the share link and the address bar keep them.
 * - A chat's first turn carries the selected image; follow-ups continue the RNN state. New chat (or a different
 *   image) starts over; the engine's image cache then skips the encoder for an image it has seen.
 *
 * Hooks for scripts and tests: #adapter / #selftest / #engine data-state; messages are articles (see chat.ts).
 */
import './style.css';
import { createVisualRwkv, type VisualRwkv } from '../worker/client';
import type { EngineInfo } from '../worker/api';
import type { ChatRequest, ImageInput, ModelSource, Progress } from '../types';
import { DeviceLostError } from '../errors';
import { checkWebGpu, selfTest, sentence } from './webgpu';
import { DEFAULT_SETTINGS, SettingsForm, requestSettings, settingsFromQuery, settingsToQuery } from './settings';
import { ProgressBar, fetchWithProgress, formatBytes, formatDuration } from './progress';
import { ImagePicker, type PickedImage } from './image';
import { Transcript, type AssistantMessage } from './chat';
import { keepOffline, registerServiceWorker } from '../pwa/register';

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

const ui = {
  adapter: $('adapter'),
  features: $('features'),
  selftest: $('selftest'),
  loadForm: $<HTMLFormElement>('load-form'),
  modelUrl: $<HTMLInputElement>('model-url'),
  modelFile: $<HTMLInputElement>('model-file'),
  encoderUrl: $<HTMLInputElement>('encoder-url'),
  encoderFile: $<HTMLInputElement>('encoder-file'),
  load: $<HTMLButtonElement>('load'),
  engine: $('engine'),
  composer: $<HTMLFormElement>('composer'),
  message: $<HTMLTextAreaElement>('message'),
  send: $<HTMLButtonElement>('send'),
  stop: $<HTMLButtonElement>('stop'),
  newChat: $<HTMLButtonElement>('new-chat'),
  composerNote: $('composer-note'),
  shareLink: $<HTMLAnchorElement>('share-link'),
};

const query = new URLSearchParams(location.search);
const fromUrl = settingsFromQuery(query);
const settings = new SettingsForm($<HTMLFormElement>('settings'), { ...DEFAULT_SETTINGS, ...fromUrl.settings });
const transcript = new Transcript($('messages'));
const picker = new ImagePicker({
  input: $<HTMLInputElement>('image-input'),
  figure: $('image-figure'),
  preview: $<HTMLImageElement>('image-preview'),
  caption: $('image-caption'),
  remove: $<HTMLButtonElement>('image-remove'),
  dropTarget: document.body,
  note: $('image-note'),
});
const bars = { weights: new ProgressBar($('progress-weights')), encoder: new ProgressBar($('progress-encoder')) };

/**
 * Execution providers for the image encoder: `?encoder_ep=wasm|webgpu`, else WASM on a software WebGPU adapter
 * (SwiftShader and the like run ORT's WebGPU kernels far slower than ORT's WASM SIMD), else the engine's default.
 */
function encoderProviders(adapter: string): ('webgpu' | 'wasm')[] | undefined {
  const ep = query.get('encoder_ep');
  if (ep === 'wasm' || ep === 'webgpu') return [ep];
  return /swiftshader|llvmpipe|lavapipe|software|fallback/i.test(adapter) ? ['wasm'] : undefined;
}

/** Page state. */
let gpuState: 'pending' | 'ok' | 'none' = 'pending';
let adapterLabel = '';
let vr: VisualRwkv | null = null;
let loading = false;
let generation: Promise<void> | null = null;
let reply: AssistantMessage | null = null;
/** The conversation the engine's RNN state holds: how many turns, and which image it is about. */
const chat = { turns: 0, image: null as Blob | null };
/** Model and encoder as given by URL (for the share link); null when loaded from a file or not loaded. */
let shared: { model: string | null; encoder: string | null } = { model: null, encoder: null };

function show(el: HTMLElement, state: string, text: string): void {
  el.dataset.state = state;
  el.textContent = text;
}

function errorText(e: unknown): string {
  return e instanceof Error ? sentence(e.message) : sentence(String(e));
}

function updateControls(): void {
  ui.load.disabled = loading || gpuState !== 'ok';
  ui.send.disabled = !vr || loading || !!generation;
  ui.stop.disabled = !generation;
}

// ---------------------------------------------------------------------------------------------------------------
// Links

/** The address bar and the share link follow the model URLs and the settings that differ from the defaults. */
function updateLinks(): void {
  const q = new URLSearchParams(location.search);
  if (vr) {
    for (const k of ['model', 'encoder'] as const) {
      const v = shared[k];
      if (v) q.set(k, v);
      else q.delete(k);
    }
  }
  settingsToQuery(settings.get(), q);
  const search = q.toString().replace(/%2F/gi, '/').replace(/%3A/gi, ':');
  const url = `${location.pathname}${search ? `?${search}` : ''}${location.hash}`;
  history.replaceState(history.state, '', url);
  ui.shareLink.href = url;
  ui.shareLink.textContent = new URL(url, location.href).href;
}

// ---------------------------------------------------------------------------------------------------------------
// Loading

function absolute(url: string): string {
  return new URL(url, document.baseURI).href;
}

function baseName(src: string | File): string {
  if (typeof src !== 'string') return src.name;
  try {
    return decodeURIComponent(new URL(src, document.baseURI).pathname.split('/').pop() || src);
  } catch {
    return src;
  }
}

function describe(info: EngineInfo, model: string, seconds: number): string {
  const arch = info.arch === 'rwkv6' ? 'RWKV-6' : 'RWKV-7';
  return (
    `Ready: ${model} (${arch}, ${info.L} layers, width ${info.C}, vocabulary ${info.V}, state ${formatBytes(info.stateBytes)}), ` +
    `${info.hasEncoder ? 'with' : 'without'} an image encoder, on ${info.adapter}. Loaded in ${formatDuration(seconds)}.`
  );
}

function onProgress(p: Progress): void {
  if (p.stage === 'weights') bars.weights.update(p.loaded, p.total);
  else if (p.stage === 'encoder') {
    if (p.total > 0 && p.loaded >= p.total) bars.encoder.finish('ready');
    else bars.encoder.working('starting onnxruntime-web…');
  } else reply?.progress(p);
}

/** Load a model (URL or file) and optionally an encoder; replaces the engine that was loaded before. */
async function load(model: string | File, encoder: string | File | null): Promise<void> {
  if (gpuState !== 'ok' || loading) return;
  loading = true;
  updateControls();
  const t0 = performance.now();
  try {
    if (generation) {
      vr?.interrupt();
      await generation;
    }
    const old = vr;
    vr = null;
    updateControls();
    await old?.dispose();
    resetChat();
    bars.weights.reset('waiting');
    let enc: ModelSource | undefined;
    if (encoder === null) bars.encoder.hide();
    else if (typeof encoder === 'string') {
      show(ui.engine, 'loading', `Downloading the image encoder ${baseName(encoder)}…`);
      bars.encoder.reset('connecting…');
      enc = await fetchWithProgress(absolute(encoder), (l, t) => bars.encoder.update(l, t));
    } else {
      bars.encoder.working(`from ${encoder.name}`, encoder.size);
      enc = encoder;
    }
    show(ui.engine, 'loading', `Loading ${baseName(model)}…`);
    const next = await createVisualRwkv({ model: typeof model === 'string' ? absolute(model) : model, encoder: enc,
      encoderProviders: encoderProviders(adapterLabel),
      onProgress,
    });
    vr = next;
    if (bars.weights.el.dataset.state !== 'done') bars.weights.finish('done');
    shared = { model: typeof model === 'string' ? model : null, encoder: typeof encoder === 'string' ? encoder : null };
    show(ui.engine, 'ready', describe(next.info, baseName(model), (performance.now() - t0) / 1000));
    updateLinks();
    void keepOffline([shared.model, shared.encoder].map((u) => u && absolute(u))); // store URL-loaded files for offline use
  } catch (e) {
    console.warn('loading failed:', e);
    for (const b of [bars.weights, bars.encoder]) if (!b.el.hidden && b.el.dataset.state !== 'done') b.fail('failed');
    show(ui.engine, 'error', `Could not load the model: ${errorText(e)}`);
  } finally {
    loading = false;
    updateControls();
  }
}

ui.modelFile.addEventListener('change', () => ui.modelFile.files?.length && (ui.modelUrl.value = ''));
ui.encoderFile.addEventListener('change', () => ui.encoderFile.files?.length && (ui.encoderUrl.value = ''));
ui.modelUrl.addEventListener('input', () => (ui.modelFile.value = ''));
ui.encoderUrl.addEventListener('input', () => (ui.encoderFile.value = ''));

ui.loadForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const model = ui.modelFile.files?.[0] ?? ui.modelUrl.value.trim();
  const encoder = ui.encoderFile.files?.[0] ?? (ui.encoderUrl.value.trim() || null);
  if (!model) {
    show(ui.engine, 'idle', 'Give a model URL or choose a model file first.');
    ui.modelUrl.focus();
    return;
  }
  void load(model, encoder);
});

// ---------------------------------------------------------------------------------------------------------------
// Chat

function resetChat(): void {
  transcript.clear();
  chat.turns = 0;
  chat.image = null;
}

/** PNG and JPEG go to the engine as bytes (decoded there exactly as the reference does); other formats are
 *  decoded by the browser to RGB pixels. */
async function imageInput(blob: Blob): Promise<ImageInput> {
  const head = new Uint8Array(await blob.slice(0, 4).arrayBuffer());
  const png = head[0] === 0x89 && head[1] === 0x50 && head[2] === 0x4e && head[3] === 0x47;
  const jpeg = head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff;
  if (png || jpeg) return blob;
  const bmp = await createImageBitmap(blob, { premultiplyAlpha: 'none', colorSpaceConversion: 'none' });
  try {
    const canvas = new OffscreenCanvas(bmp.width, bmp.height);
    const ctx = canvas.getContext('2d')!;
    ctx.drawImage(bmp, 0, 0);
    const rgba = ctx.getImageData(0, 0, bmp.width, bmp.height).data;
    const rgb = new Uint8Array(bmp.width * bmp.height * 3);
    for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
      rgb[j] = rgba[i]!;
      rgb[j + 1] = rgba[i + 1]!;
      rgb[j + 2] = rgba[i + 2]!;
    }
    return { width: bmp.width, height: bmp.height, data: rgb };
  } finally {
    bmp.close();
  }
}

async function send(): Promise<void> {
  const engine = vr;
  if (!engine || generation || loading) return;
  const text = ui.message.value;
  if (!text.trim()) {
    ui.composerNote.textContent = 'Type a question first.';
    ui.message.focus();
    return;
  }
  const img = picker.current;
  const fresh = chat.turns === 0 || (!!img && img.blob !== chat.image);
  const withImage = fresh && !!img;
  if (withImage && !engine.info.hasEncoder) {
    ui.composerNote.textContent = 'This model was loaded without an image encoder: load one with it to ask about images, or remove the image.';
    return;
  }
  ui.composerNote.textContent = '';
  if (fresh && chat.turns > 0) transcript.note('New image: a new conversation starts here (the model no longer sees the messages above).');
  const req: ChatRequest = { text, ...requestSettings(settings.get()) };
  if (fresh) req.newChat = true;
  transcript.addUser(text, withImage ? img : undefined);
  ui.message.value = '';
  const r = transcript.addAssistant(withImage);
  reply = r;
  generation = run(engine, r, req, withImage ? img : null);
  updateControls();
  try {
    await generation;
  } finally {
    generation = null;
    reply = null;
    updateControls();
    if (document.activeElement === document.body || document.activeElement === ui.stop) ui.message.focus();
  }
}

async function run(engine: VisualRwkv, r: AssistantMessage, req: ChatRequest, img: PickedImage | null): Promise<void> {
  let done: string | undefined;
  let tokens = 0;
  try {
    if (img) req.image = await imageInput(img.blob);
    for await (const c of engine.chat(req)) {
      r.push(c);
      tokens = c.stats.tokens;
      done = c.done ?? done;
    }
    if (!done) r.finish('stop');
    if (req.newChat) {
      chat.turns = 0;
      chat.image = null;
    }
    // Stopped before the first token: the engine put its state back as it was before this message.
    if (done === 'interrupted' && tokens === 0) return;
    if (req.newChat) chat.image = img?.blob ?? null;
    chat.turns++;
  } catch (e) {
    console.warn('generation failed:', e);
    r.fail(`${errorText(e)} The next message starts a new conversation.`);
    chat.turns = 0;
    chat.image = null;
    if (e instanceof DeviceLostError) {
      vr = null;
      show(ui.engine, 'error', `The GPU device was lost: load the model again. (${errorText(e)})`);
      void engine.dispose().catch(() => undefined);
    }
  }
}

function stop(): void {
  if (generation) vr?.interrupt();
}

async function newChat(): Promise<void> {
  if (generation) {
    stop();
    await generation;
  }
  resetChat();
  ui.composerNote.textContent = '';
  ui.message.focus();
}

ui.composer.addEventListener('submit', (e) => {
  e.preventDefault();
  void send();
});
ui.message.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    if (!ui.send.disabled) void send();
  } else if (e.key === 'Escape') stop();
});
ui.stop.addEventListener('click', stop);
ui.newChat.addEventListener('click', () => void newChat());
settings.onChange(updateLinks);
picker.onChange((p) => {
  const next = p && chat.turns > 0 && p.blob !== chat.image;
  ui.composerNote.textContent = next ? 'The next message starts a new conversation about this image.' : '';
});

// ---------------------------------------------------------------------------------------------------------------
// Start

async function start(): Promise<void> {
  updateControls();
  if (fromUrl.warnings.length) ui.composerNote.textContent = fromUrl.warnings.join(' ');
  const preModel = query.get('model');
  const preEncoder = query.get('encoder');
  if (preModel) {
    ui.modelUrl.value = preModel;
    show(ui.engine, 'idle', `Checking WebGPU before loading ${baseName(preModel)}…`);
  }
  if (preEncoder) ui.encoderUrl.value = preEncoder;
  updateLinks();

  const check = await checkWebGpu();
  if (!check.ok) {
    gpuState = 'none';
    show(ui.adapter, check.unavailable ? 'unavailable' : 'error', check.message);
    show(ui.selftest, 'skipped', 'Self-test skipped: no WebGPU device.');
    show(ui.engine, 'unavailable', 'The chat cannot run here: it needs WebGPU (see above).');
    updateControls();
    return;
  }
  show(ui.adapter, 'ready', check.name);
  adapterLabel = check.name;
  ui.features.textContent = check.features;
  ui.features.hidden = false;
  try {
    show(ui.selftest, 'pass', await selfTest(check.gpu));
  } catch (e) {
    console.error('self-test failed', e);
    show(ui.selftest, 'fail', `Self-test failed: ${(e as Error).message}`);
  } finally {
    check.gpu.device.destroy(); // the engine's worker makes its own device
  }
  gpuState = 'ok';
  updateControls();
  if (preModel) void load(preModel, preEncoder || null);
}

void registerServiceWorker({ status: $('offline'), update: $('update') });
void start();
