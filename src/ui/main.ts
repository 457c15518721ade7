/**
 * The chat page: a thin UI over `createVisualRwkv` (the engine runs in a Web Worker).
 *
 * - WebGPU is checked first (adapter name + a one-kernel self-test); without it the page says where WebGPU works.
 * - Model and encoder come from the catalogue (or what is stored on this device), any URL, or a local file;
 *   `?model=<url or catalogue id>&encoder=<url or id>` preloads both. URL and catalogue files are downloaded into the
 *   model store (OPFS, else the Cache API: resumable, verified) and loaded from there, so later visits and offline
 *   use need no network; a local file is used as is or, when asked, copied into the store. The first load of a
 *   `.pth` keeps a GPU-ready copy (see models.ts): later loads of it skip the conversion. The "Stored models" panel
 *   (cache-manager.ts) lists, deletes and downloads stored files, shows the storage estimate and asks for
 *   persistent storage. Sampling settings come from the settings form and the URL (`temperature`, `top_p`,
 *   `max_tokens`, `presence_penalty`, `frequency_penalty`, `image_position`, `bidirectional`); the share link and the
 *   address bar keep them.
 * - A chat's first turn carries the selected image; follow-ups continue the RNN state. New chat (or a different
 *   image) starts over; the engine's image cache then skips the encoder for an image it has seen.
 *
 * Hooks for scripts and tests: #adapter / #selftest / #engine data-state; #engine data-source ('gpu-ready' |
 * 'original') once loaded; messages are articles (see chat.ts); the panel's rows carry data-id / data-state.
 */
import './style.css';
import { createVisualRwkv, type VisualRwkv } from '../worker/client';
import type { EngineInfo } from '../worker/api';
import type { ChatRequest, ImageInput, ModelSource, Progress } from '../types';
import { DeviceLostError, errorSentence, WeightsFormatError } from '../errors';
import { checkWebGpu, selfTest } from './webgpu';
import { DEFAULT_SETTINGS, SettingsForm, requestSettings, settingsFromQuery, settingsToQuery } from './settings';
import { ProgressBar, formatBytes, formatDuration } from './progress';
import { ImagePicker, type PickedImage } from './image';
import { Transcript, type AssistantMessage } from './chat';
import { keepOffline, noteStoredModels, registerServiceWorker } from '../pwa/register';
import { MODEL_CACHE } from '../pwa/shared';
import { ModelStore } from '../storage/store';
import { CATALOG, catalogEntry } from '../storage/catalog';
import type { StoredModel } from '../storage/registry';
import type { DownloadProgress } from '../storage/progress';
import { mountCacheManager } from './cache-manager';
import {
  choiceFromValue,
  choiceName,
  findGpuReady,
  gpuReadyId,
  isGpuReadyRecord,
  isPth,
  obtain,
  sourceId,
  startGpuReadyCopy,
  type GpuReadyCopy,
  type Obtained,
  type SourceChoice,
} from './models';

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

const ui = {
  adapter: $('adapter'),
  features: $('features'),
  selftest: $('selftest'),
  loadForm: $<HTMLFormElement>('load-form'),
  modelCatalog: $<HTMLSelectElement>('model-catalog'),
  modelUrl: $<HTMLInputElement>('model-url'),
  modelFile: $<HTMLInputElement>('model-file'),
  encoderCatalog: $<HTMLSelectElement>('encoder-catalog'),
  encoderUrl: $<HTMLInputElement>('encoder-url'),
  encoderFile: $<HTMLInputElement>('encoder-file'),
  keepFiles: $<HTMLInputElement>('keep-files'),
  keepGpuReady: $<HTMLInputElement>('keep-gpu-ready'),
  load: $<HTMLButtonElement>('load'),
  pause: $<HTMLButtonElement>('pause-load'),
  engine: $('engine'),
  modelNote: $('model-note'),
  storageSummary: $('storage-summary'),
  cachePanel: $('cache-panel'),
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
/** Model and encoder as given by URL or catalogue id (for the share link); null when loaded from a file. */
let shared: { model: string | null; encoder: string | null } = { model: null, encoder: null };
/** The model store (null where this browser cannot store files: then URLs are read directly). */
let store: ModelStore | null = null;
/** Ids of complete stored files (for the pickers). */
let storedIds = new Set<string>();
/** Aborts the download in progress ("Pause download"). */
let loadCtrl: AbortController | null = null;

function show(el: HTMLElement, state: string, text: string): void {
  el.dataset.state = state;
  el.textContent = text;
}

function isAbort(e: unknown): boolean {
  return (e as DOMException)?.name === 'AbortError';
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
  if (vr || loading) {
    for (const k of ['model', 'encoder'] as const) {
      const v = shared[k];
      if (v) q.set(k, v);
      else q.delete(k);
    }
  }
  settingsToQuery(settings.get(), q);
  const search = q.toString().replace(/%2F/gi, '/').replace(/%3A/gi, ':');
  // An absolute URL: a path such as `//` would otherwise read as a protocol-relative address (a SecurityError).
  const target = new URL(location.href);
  target.search = search ? `?${search}` : '';
  const url = target.href;
  history.replaceState(history.state, '', url);
  ui.shareLink.href = url;
  ui.shareLink.textContent = url;
}

// ---------------------------------------------------------------------------------------------------------------
// Storage

/** Fill the pickers: catalogue entries (marked when stored), then other stored files of this device. */
function fillPickers(records: StoredModel[]): void {
  const complete = records.filter((r) => r.state === 'complete' && !isGpuReadyRecord(r));
  storedIds = new Set(complete.map((r) => r.id));
  const copies = new Set(records.filter((r) => r.state === 'complete' && isGpuReadyRecord(r)).map((r) => r.derivedFrom!));
  const partial = new Set(records.filter((r) => r.state === 'partial').map((r) => r.id));
  const fill = (select: HTMLSelectElement, kind: 'checkpoint' | 'encoder', empty: string) => {
    const keep = select.value;
    const opts: HTMLElement[] = [new Option(empty, '')];
    const released = document.createElement('optgroup');
    released.label = kind === 'checkpoint' ? 'Released models' : 'Released encoders';
    for (const e of CATALOG.filter((x) => x.kind === kind)) {
      const size = e.size ?? e.approxSize;
      const state = storedIds.has(e.id) || copies.has(e.id) ? ' · stored' : partial.has(e.id) ? ' · partly downloaded' : size ? ` · ≈ ${formatBytes(size)}` : '';
      released.append(new Option(`${e.name}${state}`, e.id));
    }
    opts.push(released);
    const mine = complete.filter((r) => !catalogEntry(r.id) && (kind === 'encoder') === /\.onnx$/i.test(r.fileName ?? r.name));
    // A source whose only copy left is its GPU-ready form can still be loaded.
    for (const id of copies) if (!storedIds.has(id) && !catalogEntry(id) && kind === 'checkpoint') mine.push(records.find((r) => r.derivedFrom === id)!);
    if (mine.length) {
      const group = document.createElement('optgroup');
      group.label = 'Stored on this device';
      for (const r of mine) {
        const id = r.derivedFrom ?? r.id;
        storedIds.add(id);
        group.append(new Option(`${(r.derivedFrom ? r.name.replace(/ — GPU-ready copy$/, '') : r.fileName ?? r.name)} · ${formatBytes(r.bytes)}`, id));
      }
      opts.push(group);
    }
    select.replaceChildren(...opts);
    if ([...select.options].some((o) => o.value === keep)) select.value = keep;
  };
  fill(ui.modelCatalog, 'checkpoint', '— choose —');
  fill(ui.encoderCatalog, 'encoder', '— none —');
}

async function refreshStorage(): Promise<void> {
  if (!store) return;
  const [records, est] = await Promise.all([store.list(), store.estimate().catch(() => null)]);
  fillPickers(records);
  const parts = [`${formatBytes(records.reduce((n, r) => n + r.bytes, 0))} in ${records.length} file${records.length === 1 ? '' : 's'}`];
  if (est?.available !== undefined) parts.push(`${formatBytes(est.available)} free`);
  if (est) parts.push(est.persisted ? 'persistent' : 'may be cleared under storage pressure');
  ui.storageSummary.textContent = `(${parts.join(' · ')})`;
}

let refreshPending: ReturnType<typeof setTimeout> | undefined;
function scheduleRefresh(): void {
  if (refreshPending !== undefined) return;
  refreshPending = setTimeout(() => {
    refreshPending = undefined;
    void refreshStorage().catch((e) => console.warn('storage refresh failed:', e));
  }, 100);
}

/** Ask once per page for persistent storage when something is about to be stored. */
let persistAsked = false;
async function askPersistence(): Promise<void> {
  if (!store || persistAsked) return;
  persistAsked = true;
  const est = await store.estimate().catch(() => null);
  if (est && !est.persisted) await store.requestPersistence();
  scheduleRefresh();
}

async function openStore(): Promise<void> {
  try {
    store = await ModelStore.open();
  } catch (e) {
    ui.modelNote.textContent = `Models cannot be stored on this device (${errorSentence(e)}): they are read from their URL on every visit.`;
    return;
  }
  store.subscribe((e) => {
    if (e.type === 'change') scheduleRefresh();
  });
  mountCacheManager(ui.cachePanel, store, {
    catalog: CATALOG,
    title: '',
    urlCache: MODEL_CACHE,
    onUse: (rec) => useStored(rec),
    onError: (e) => console.warn('stored models:', e),
  });
  await refreshStorage();
  const partial = (await store.list()).filter((r) => r.state === 'partial');
  if (partial.length && !ui.modelNote.textContent) {
    ui.modelNote.textContent = `Unfinished download${partial.length > 1 ? 's' : ''}: ${partial.map((r) => r.name).join(', ')} — load ${partial.length > 1 ? 'one' : 'it'} again (or use Resume under Stored models) to continue where it stopped.`;
  }
}

/** The panel's Use button: pick that file (as model or encoder) and load. */
function useStored(rec: StoredModel): void {
  const id = rec.derivedFrom ?? rec.id;
  const encoder = catalogEntry(id)?.kind === 'encoder' || /\.onnx$/i.test(rec.fileName ?? rec.name);
  const select = encoder ? ui.encoderCatalog : ui.modelCatalog;
  storedIds.add(id);
  if (![...select.options].some((o) => o.value === id)) select.append(new Option(rec.name, id));
  select.value = id;
  select.dispatchEvent(new Event('change'));
  if (encoder && !vr) {
    ui.modelNote.textContent = `Encoder ${rec.name} selected: choose a model and press Load.`;
    return;
  }
  ui.loadForm.requestSubmit();
}

// ---------------------------------------------------------------------------------------------------------------
// Loading

function describe(info: EngineInfo, model: string, seconds: number, fromCopy: boolean): string {
  const arch = info.arch === 'rwkv6' ? 'RWKV-6' : 'RWKV-7';
  return (
    `Ready: ${model} (${arch}, ${info.L} layers, width ${info.C}, vocabulary ${info.V}, state ${formatBytes(info.stateBytes)}), ` +
    `${info.hasEncoder ? 'with' : 'without'} an image encoder, on ${info.adapter}. ` +
    (fromCopy ? `Loaded the GPU-ready copy (no conversion) in ${formatDuration(seconds)}.` : `Loaded in ${formatDuration(seconds)}.`)
  );
}

function onProgress(p: Progress): void {
  if (p.stage === 'weights') bars.weights.update(p.loaded, p.total);
  else if (p.stage === 'encoder') {
    if (p.total > 0 && p.loaded >= p.total) bars.encoder.finish('ready');
    else bars.encoder.working('starting onnxruntime-web…');
  } else reply?.progress(p);
}

/** The share-link form of a choice: a catalogue id or a URL as given; null for files. */
function shareOf(c: SourceChoice | null, typed: string | null): string | null {
  if (!c) return null;
  if (c.kind === 'catalog') return c.entry.id;
  if (c.kind === 'url') return typed ?? c.url;
  if (c.kind === 'stored') return catalogEntry(c.id) ? c.id : c.id.startsWith('url:') ? c.id.slice(4) : null;
  return null;
}

/** Show a download's progress; Pause is offered while bytes are moving. */
function downloading(bar: ProgressBar, p: DownloadProgress, verb: string): void {
  bar.download(p, verb);
  ui.pause.hidden = p.phase === 'complete' || p.phase === 'verifying';
}

/** Get the encoder's bytes (download / stored / file). */
async function obtainEncoder(c: SourceChoice, signal: AbortSignal): Promise<Obtained> {
  show(ui.engine, 'loading', `Getting the image encoder ${choiceName(c)}…`);
  bars.encoder.reset('connecting…');
  const got = await obtain(store, c, { signal, onProgress: (p, verb) => downloading(bars.encoder, p, verb) });
  ui.pause.hidden = true;
  bars.encoder.working(got.stored ? 'stored on this device' : `from ${got.name}`, typeof got.source === 'string' ? undefined : got.source.size);
  return got;
}

interface Loaded {
  engine: VisualRwkv;
  fromCopy: boolean;
  model: Obtained | null;
  copy: GpuReadyCopy | null;
}

/** Load the model, from its GPU-ready copy when there is one (falling back to the original if the copy is refused). */
async function loadModel(c: SourceChoice, encoder: ModelSource | undefined, signal: AbortSignal): Promise<Loaded> {
  const id = sourceId(c);
  const name = choiceName(c);
  const options = { encoder, encoderProviders: encoderProviders(adapterLabel), onProgress };
  if (store) {
    const rec = await store.get(id);
    const copy = await findGpuReady(store, id, rec?.state === 'complete' ? rec.sha256 : undefined);
    if (copy) {
      show(ui.engine, 'loading', `Loading the GPU-ready copy of ${name}…`);
      bars.weights.reset('reading the GPU-ready copy…');
      try {
        return { engine: await createVisualRwkv({ model: copy, ...options }), fromCopy: true, model: null, copy: null };
      } catch (e) {
        if (!(e instanceof WeightsFormatError)) throw e;
        // Made by another version (or damaged): drop it and load the original, which writes a new copy.
        console.warn('GPU-ready copy refused, loading the original:', e);
        await store.delete(gpuReadyId(id)).catch(() => undefined);
      }
    }
  }
  show(ui.engine, 'loading', `Getting ${name}…`);
  bars.weights.reset('connecting…');
  const got = await obtain(store, c, { signal, onProgress: (p, verb) => downloading(bars.weights, p, verb) });
  ui.pause.hidden = true;
  let copy: GpuReadyCopy | null = null;
  if (store && ui.keepGpuReady.checked && typeof got.source !== 'string' && (await isPth(got.source))) {
    copy = startGpuReadyCopy(store, got, got.source.size);
  }
  show(ui.engine, 'loading', `Loading ${got.name}…`);
  bars.weights.reset('loading onto the GPU…');
  try {
    const engine = await createVisualRwkv({ model: got.source, ...options, ...(copy ? { recordTensors: copy.sink } : {}) });
    return { engine, fromCopy: false, model: got, copy };
  } catch (e) {
    copy?.abandon(e);
    throw e;
  }
}

/** Load a model and optionally an encoder; replaces the engine that was loaded before. */
async function load(model: SourceChoice, encoder: SourceChoice | null, typed: { model: string | null; encoder: string | null } = { model: null, encoder: null }): Promise<void> {
  if (gpuState !== 'ok' || loading) return;
  loading = true;
  const ctrl = new AbortController();
  loadCtrl = ctrl;
  ui.modelNote.textContent = '';
  // The state leaves ready/paused/error at once (before any await), so nothing reads the old outcome as this one's.
  show(ui.engine, 'loading', `Loading ${choiceName(model)}…`);
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
    delete ui.engine.dataset.source;
    // The address bar names what is loading, so a reload in the middle resumes the download.
    shared = { model: shareOf(model, typed.model), encoder: shareOf(encoder, typed.encoder) };
    updateLinks();
    bars.weights.reset('waiting');
    if (store && (model.kind !== 'file' || model.keep)) void askPersistence();
    let enc: Obtained | null = null;
    if (encoder === null) bars.encoder.hide();
    else enc = await obtainEncoder(encoder, ctrl.signal);
    const loaded = await loadModel(model, enc?.source, ctrl.signal);
    const next = loaded.engine;
    vr = next;
    if (bars.weights.el.dataset.state !== 'done') bars.weights.finish('done');
    ui.pause.hidden = true;
    const name = loaded.model?.name ?? choiceName(model);
    let note = '';
    if (loaded.copy) {
      try {
        const rec = await loaded.copy.finish(next.info.config);
        note = `Kept a GPU-ready copy (${formatBytes(rec.bytes)}): the next load of ${name} skips the conversion.`;
      } catch (e) {
        note = `No GPU-ready copy was kept: ${errorSentence(e)}`;
      }
    }
    ui.engine.dataset.source = loaded.fromCopy ? 'gpu-ready' : 'original';
    show(ui.engine, 'ready', describe(next.info, name, (performance.now() - t0) / 1000, loaded.fromCopy));
    ui.modelNote.textContent = note;
    updateLinks();
    // Offline use: stored files are kept by the store; URLs read directly are handed to the service worker.
    const storedNames = [loaded.model?.stored || loaded.fromCopy ? name : null, enc?.stored ? enc.name : null];
    noteStoredModels(storedNames);
    if (!store) void keepOffline([shared.model, shared.encoder].map((u) => u && new URL(u, document.baseURI).href));
  } catch (e) {
    ui.pause.hidden = true;
    for (const b of [bars.weights, bars.encoder]) if (!b.el.hidden && b.el.dataset.state !== 'done') b.fail(isAbort(e) ? 'paused' : 'failed');
    if (isAbort(e)) {
      show(ui.engine, 'paused', 'Download paused: the part downloaded so far is kept. Press Load to continue where it stopped.');
    } else {
      console.warn('loading failed:', e);
      show(ui.engine, 'error', `Could not load the model: ${errorSentence(e)}`);
    }
  } finally {
    loading = false;
    loadCtrl = null;
    updateControls();
    scheduleRefresh();
  }
}

ui.pause.addEventListener('click', () => loadCtrl?.abort(new DOMException('paused by the user', 'AbortError')));

// The three ways to give a model (and an encoder) exclude each other: the last one touched counts.
for (const [select, url, file] of [
  [ui.modelCatalog, ui.modelUrl, ui.modelFile],
  [ui.encoderCatalog, ui.encoderUrl, ui.encoderFile],
] as const) {
  select.addEventListener('change', () => {
    if (select.value) {
      url.value = '';
      file.value = '';
    }
  });
  url.addEventListener('input', () => {
    file.value = '';
    select.value = '';
  });
  file.addEventListener('change', () => {
    if (file.files?.length) {
      url.value = '';
      select.value = '';
    }
  });
}

/** What the form says for one of model/encoder; `typed` is the URL text as entered (for the share link). */
function formChoice(select: HTMLSelectElement, url: HTMLInputElement, file: HTMLInputElement): { choice: SourceChoice | null; typed: string | null } {
  const f = file.files?.[0];
  if (f) return { choice: { kind: 'file', file: f, keep: ui.keepFiles.checked }, typed: null };
  const typed = url.value.trim();
  if (typed) return { choice: choiceFromValue(typed, document.baseURI, storedIds), typed };
  if (select.value) return { choice: choiceFromValue(select.value, document.baseURI, storedIds), typed: null };
  return { choice: null, typed: null };
}

ui.loadForm.addEventListener('submit', (e) => {
  e.preventDefault();
  let model: ReturnType<typeof formChoice>;
  let encoder: ReturnType<typeof formChoice>;
  try {
    model = formChoice(ui.modelCatalog, ui.modelUrl, ui.modelFile);
    encoder = formChoice(ui.encoderCatalog, ui.encoderUrl, ui.encoderFile);
  } catch (err) {
    show(ui.engine, 'idle', errorSentence(err));
    return;
  }
  if (!model.choice) {
    show(ui.engine, 'idle', 'Choose a released model, give a model URL, or pick a model file first.');
    ui.modelCatalog.focus();
    return;
  }
  void load(model.choice, encoder.choice, { model: model.typed, encoder: encoder.typed });
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
    r.fail(`${errorSentence(e)} The next message starts a new conversation.`);
    chat.turns = 0;
    chat.image = null;
    if (e instanceof DeviceLostError) {
      vr = null;
      show(ui.engine, 'error', `The GPU device was lost: load the model again. (${errorSentence(e)})`);
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
  fillPickers([]);
  const opening = openStore();
  if (fromUrl.warnings.length) ui.composerNote.textContent = fromUrl.warnings.join(' ');
  const preModel = query.get('model');
  const preEncoder = query.get('encoder');
  // A catalogue id selects the entry; anything else is a URL.
  if (preModel) {
    if (catalogEntry(preModel)) ui.modelCatalog.value = preModel;
    else ui.modelUrl.value = preModel;
    show(ui.engine, 'idle', `Checking WebGPU before loading ${choiceName(choiceFromValue(preModel, document.baseURI))}…`);
  }
  if (preEncoder) {
    if (catalogEntry(preEncoder)) ui.encoderCatalog.value = preEncoder;
    else ui.encoderUrl.value = preEncoder;
  }
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
  await opening;
  if (preModel) {
    try {
      const model = choiceFromValue(preModel, document.baseURI, storedIds);
      const encoder = preEncoder ? choiceFromValue(preEncoder, document.baseURI, storedIds) : null;
      void load(model, encoder, { model: catalogEntry(preModel) ? null : preModel, encoder: preEncoder && !catalogEntry(preEncoder) ? preEncoder : null });
    } catch (e) {
      show(ui.engine, 'error', `Could not load the model: ${errorSentence(e)}`);
    }
  }
}

void registerServiceWorker({ status: $('offline'), update: $('update') });
void start();
