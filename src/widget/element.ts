/**
 * `<visual-rwkv-chat>`: the whole chat in one custom element (shadow DOM), over `createVisualRwkv` (the engine runs
 * in a Web Worker). Its own small UI: image picker (file, drop or paste), message box, Send / Stop / New chat, and a
 * streaming transcript (the page's `Transcript`: `<article data-role="user|assistant">`, data-done, data-done-reason,
 * data-tokens, ...).
 *
 * Attributes: `model` and `encoder` (URLs, resolved against the page; changing them reloads), `temperature`, `top-p`,
 * `max-tokens`, `encoder-providers` ("wasm", "webgpu" or "webgpu,wasm"). The host carries `data-state`
 * (idle | loading | ready | generating | error | unavailable).
 *
 * Events (bubbling, composed): `ready` (detail: EngineInfo), `progress` (Progress), `token` (TokenChunk), `done`
 * ({ reason, text, tokens }), `error` ({ error, message }).
 *
 * Theming: CSS custom properties `--vrwkv-accent`, `--vrwkv-bg`, `--vrwkv-fg`, `--vrwkv-font`, `--vrwkv-panel`,
 * `--vrwkv-border`, `--vrwkv-radius`, `--vrwkv-height`, and `::part()` (see widget.css).
 *
 * @example
 * <script type="module" src="/node_modules/visualrwkv-web/dist/lib/widget.js"></script>
 * <visual-rwkv-chat model="/models/VisualRWKV-v060-1B6-v1.0-20240612.pth" encoder="/models/vision_model.onnx"
 *   style="--vrwkv-accent: #0a7">
 * </visual-rwkv-chat>
 */
import { APP_DEFAULTS, createVisualRwkv, InvalidArgumentError, WebGPUUnavailableError } from '../index';
import { errorSentence } from '../errors';
import type { ChatRequest, EngineInfo, ImageInput, ModelSource, Progress, TokenChunk, VisualRwkv } from '../index';
import { Transcript, type AssistantMessage } from '../ui/chat';
import css from './widget.css?inline';

/** The element's tag name. */
export const TAG = 'visual-rwkv-chat';

export type WidgetState = 'idle' | 'loading' | 'ready' | 'generating' | 'error' | 'unavailable';

/** Detail of the `done` event. */
export interface DoneDetail {
  reason: 'stop' | 'length' | 'interrupted' | 'error';
  /** The whole reply. */
  text: string;
  tokens: number;
}

/** Detail of the `error` event. */
export interface ErrorDetail {
  error: unknown;
  message: string;
}

/** Events of `<visual-rwkv-chat>` (all CustomEvents, bubbling and composed). */
export interface VisualRwkvChatEventMap {
  ready: CustomEvent<EngineInfo>;
  progress: CustomEvent<Progress>;
  token: CustomEvent<TokenChunk>;
  done: CustomEvent<DoneDetail>;
  error: CustomEvent<ErrorDetail>;
}

const DEFAULT_MAX_TOKENS = 512;

/** In Node (no DOM) the module still imports: the class then extends a stand-in and is never registered. */
const Base: typeof HTMLElement = typeof HTMLElement === 'undefined' ? (class {} as unknown as typeof HTMLElement) : HTMLElement;

function number(raw: string | null, min: number, max: number, fallback: number, integer = false): number {
  if (raw === null || raw.trim() === '') return fallback;
  const v = Number(raw);
  return Number.isFinite(v) && v >= min && v <= max && (!integer || Number.isInteger(v)) ? v : fallback;
}

/** Software WebGPU adapters run onnxruntime's WebGPU kernels far slower than its WASM SIMD ones. */
async function softwareAdapter(adapter: GPUAdapter): Promise<boolean> {
  const a = adapter as GPUAdapter & { isFallbackAdapter?: boolean; info?: GPUAdapterInfo & { isFallbackAdapter?: boolean } };
  const info = a.info;
  const text = info ? `${info.vendor} ${info.architecture} ${info.device} ${info.description}` : '';
  return !!(a.isFallbackAdapter || info?.isFallbackAdapter) || /swiftshader|llvmpipe|lavapipe|software|fallback/i.test(text);
}

/** PNG and JPEG go to the engine as bytes (decoded there like the reference); other formats via the browser. */
async function imageInput(blob: Blob): Promise<ImageInput> {
  const h = new Uint8Array(await blob.slice(0, 4).arrayBuffer());
  if ((h[0] === 0x89 && h[1] === 0x50 && h[2] === 0x4e && h[3] === 0x47) || (h[0] === 0xff && h[1] === 0xd8 && h[2] === 0xff)) return blob;
  const bmp = await createImageBitmap(blob, { premultiplyAlpha: 'none', colorSpaceConversion: 'none' });
  try {
    const ctx = new OffscreenCanvas(bmp.width, bmp.height).getContext('2d')!;
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

const TEMPLATE = `
<div class="container" part="container">
  <p class="status" part="status" role="status" aria-live="polite" data-state="idle">No model yet: set the model attribute.</p>
  <button type="button" class="retry" part="retry" hidden>Retry</button>
  <progress class="load" part="progress" hidden></progress>
  <div class="log" part="transcript" role="log" aria-live="polite" aria-label="Conversation"></div>
  <form class="composer" part="composer" novalidate>
    <div class="image-row">
      <label for="image">Image</label>
      <input id="image" class="image" type="file" accept="image/*" />
      <img class="preview" alt="" hidden />
      <button type="button" class="remove-image" hidden>Remove image</button>
    </div>
    <label for="message" class="visually-hidden">Message</label>
    <textarea id="message" class="message-box" rows="2" placeholder="Ask about the image… (Enter sends)"></textarea>
    <div class="buttons">
      <button type="submit" class="send" part="send" disabled>Send</button>
      <button type="button" class="stop" part="stop" disabled>Stop</button>
      <button type="button" class="new-chat" part="new-chat">New chat</button>
    </div>
  </form>
</div>`;

export class VisualRwkvChat extends Base {
  static readonly observedAttributes = ['model', 'encoder'];

  private vr: VisualRwkv | null = null;
  private engineInfo: EngineInfo | null = null;
  private loadId = 0;
  private loadScheduled = false;
  private loading: Promise<void> | null = null;
  private generation: Promise<string> | null = null;
  private picked: Blob | null = null;
  private pickedUrl: string | null = null;
  /** The conversation the engine's state holds. */
  private chat = { turns: 0, image: null as Blob | null };
  /** What the last load() was given (Retry repeats it). */
  private lastLoad: { model: ModelSource; encoder: ModelSource | null } | null = null;
  private ui!: {
    status: HTMLElement;
    retry: HTMLButtonElement;
    progress: HTMLProgressElement;
    log: HTMLElement;
    form: HTMLFormElement;
    image: HTMLInputElement;
    preview: HTMLImageElement;
    removeImage: HTMLButtonElement;
    message: HTMLTextAreaElement;
    send: HTMLButtonElement;
    stop: HTMLButtonElement;
    newChat: HTMLButtonElement;
  };
  private transcript!: Transcript;

  constructor() {
    super();
    const root = this.attachShadow({ mode: 'open' });
    const style = document.createElement('style');
    style.textContent = css;
    const tpl = document.createElement('template');
    tpl.innerHTML = TEMPLATE;
    root.append(style, tpl.content.cloneNode(true));
    const q = <T extends HTMLElement>(sel: string) => root.querySelector(sel) as T;
    this.ui = {
      status: q('.status'),
      retry: q('.retry'),
      progress: q('progress.load'),
      log: q('.log'),
      form: q('form'),
      image: q('input.image'),
      preview: q('img.preview'),
      removeImage: q('.remove-image'),
      message: q('textarea'),
      send: q('.send'),
      stop: q('.stop'),
      newChat: q('.new-chat'),
    };
    this.transcript = new Transcript(this.ui.log);
    this.wire();
  }

  // -------------------------------------------------------------------------------------------------------------
  // Attributes and properties

  /** URL of the checkpoint (`.pth` / `.safetensors`). */
  get model(): string | null {
    return this.getAttribute('model');
  }
  set model(v: string | null) {
    if (v === null) this.removeAttribute('model');
    else this.setAttribute('model', v);
  }

  /** URL of the ONNX image encoder (optional). */
  get encoder(): string | null {
    return this.getAttribute('encoder');
  }
  set encoder(v: string | null) {
    if (v === null) this.removeAttribute('encoder');
    else this.setAttribute('encoder', v);
  }

  /** The loaded engine (null until `ready`). */
  get engine(): VisualRwkv | null {
    return this.vr;
  }

  /** What was loaded (null until `ready`). */
  get info(): EngineInfo | null {
    return this.engineInfo;
  }

  get state(): WidgetState {
    return (this.dataset.state as WidgetState | undefined) ?? 'idle';
  }

  connectedCallback(): void {
    if (!this.dataset.state) this.dataset.state = 'idle';
    if (this.model && !this.vr && !this.loading) this.scheduleLoad();
  }

  disconnectedCallback(): void {
    // Moving the element (disconnect + connect in one task) keeps the engine; removing it frees the GPU memory.
    queueMicrotask(() => {
      if (!this.isConnected) void this.unload();
    });
  }

  attributeChangedCallback(_name: string, old: string | null, value: string | null): void {
    if (old !== value && this.isConnected && this.model) this.scheduleLoad();
  }

  // -------------------------------------------------------------------------------------------------------------
  // Public methods

  /**
   * Load a model (default: the `model` / `encoder` attributes). Files and bytes work too. Replaces the engine loaded
   * before. Resolves when ready; rejects (and fires `error`) when loading fails.
   */
  async load(model: ModelSource | null = this.model, encoder: ModelSource | null = this.encoder): Promise<EngineInfo> {
    if (!model) throw new InvalidArgumentError('no model: set the model attribute or pass one to load()');
    const id = ++this.loadId;
    this.lastLoad = { model, encoder };
    let release!: () => void;
    const done = new Promise<void>((r) => (release = r));
    this.loading = done;
    try {
      if (this.generation) {
        this.vr?.interrupt();
        await this.generation.catch(() => undefined);
      }
      await this.unload();
      this.setState('loading', `Loading ${this.nameOf(model)}…`);
      this.ui.progress.hidden = false;
      this.ui.progress.removeAttribute('value');
      const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
      if (!gpu) throw new WebGPUUnavailableError('this browser has no WebGPU (navigator.gpu is undefined)');
      const adapter = await gpu.requestAdapter();
      if (!adapter) throw new WebGPUUnavailableError('no WebGPU adapter was found (blocklisted GPU or WebGPU turned off)');
      const vr = await createVisualRwkv({
        model: this.resolve(model),
        encoder: encoder ? this.resolve(encoder) : undefined,
        encoderProviders: this.providers() ?? ((await softwareAdapter(adapter)) ? ['wasm'] : undefined),
        onProgress: (p) => this.onProgress(p),
      });
      if (id !== this.loadId) {
        await vr.dispose(); // superseded by a later load
        throw new InvalidArgumentError('loading was replaced by a newer load');
      }
      this.vr = vr;
      this.engineInfo = vr.info;
      this.ui.progress.hidden = true;
      this.setState('ready', `Ready: ${this.nameOf(model)} (${vr.info.arch === 'rwkv6' ? 'RWKV-6' : 'RWKV-7'}, ` +
        `${vr.info.L} layers${vr.info.hasEncoder ? ', with an image encoder' : ''}) on ${vr.info.adapter}.`);
      this.emit('ready', vr.info);
      return vr.info;
    } catch (e) {
      if (id === this.loadId) {
        this.ui.progress.hidden = true;
        const unavailable = e instanceof WebGPUUnavailableError;
        this.setState(unavailable ? 'unavailable' : 'error', `Could not load the model: ${errorSentence(e)}`);
        this.emit('error', { error: e, message: errorSentence(e) });
      }
      throw e;
    } finally {
      if (this.loading === done) this.loading = null;
      release();
      this.updateControls();
    }
  }

  /**
   * Ask a question (with the picked image on a chat's first turn, or `image` if given) and stream the answer into
   * the transcript. Resolves with the reply's text.
   */
  async send(text: string, image?: Blob | null): Promise<string> {
    const vr = this.vr;
    if (!vr) throw new InvalidArgumentError('the model is not loaded yet');
    if (this.generation) throw new InvalidArgumentError('a reply is still streaming: stop it or wait');
    if (!text.trim()) throw new InvalidArgumentError('type a question first');
    const img = image === undefined ? this.picked : image;
    const fresh = this.chat.turns === 0 || (!!img && img !== this.chat.image);
    const withImage = fresh && !!img;
    if (withImage && !vr.info.hasEncoder) throw new InvalidArgumentError('this model was loaded without an image encoder (set the encoder attribute)');
    const req: ChatRequest = {
      text,
      sampler: {
        temperature: number(this.getAttribute('temperature'), 0, 5, APP_DEFAULTS.temperature),
        topP: number(this.getAttribute('top-p'), 0, 1, APP_DEFAULTS.topP),
      },
      maxTokens: number(this.getAttribute('max-tokens'), 1, 65536, DEFAULT_MAX_TOKENS, true),
    };
    if (fresh) req.newChat = true;
    if (fresh && this.chat.turns > 0) this.transcript.note('New image: a new conversation starts here.');
    this.transcript.addUser(text, withImage ? { blob: img!, name: (img as File).name ?? 'image' } : undefined);
    const reply = this.transcript.addAssistant(withImage);
    this.generation = this.run(vr, reply, req, withImage ? img! : null);
    this.setState('generating');
    this.updateControls();
    try {
      return await this.generation;
    } finally {
      this.generation = null;
      if (this.vr === vr) this.setState('ready');
      this.updateControls();
    }
  }

  /** Stop the reply that is streaming (it ends with reason 'interrupted'). */
  stop(): void {
    if (this.generation) this.vr?.interrupt();
  }

  /** Forget the conversation and clear the transcript. */
  async newChat(): Promise<void> {
    if (this.generation) {
      this.stop();
      await this.generation.catch(() => undefined);
    }
    this.transcript.clear();
    this.chat = { turns: 0, image: null };
  }

  // -------------------------------------------------------------------------------------------------------------
  // Internals

  private async run(vr: VisualRwkv, r: AssistantMessage, req: ChatRequest, img: Blob | null): Promise<string> {
    let done: DoneDetail['reason'] | undefined;
    let tokens = 0;
    let text = '';
    try {
      if (img) req.image = await imageInput(img);
      for await (const c of vr.chat(req)) {
        r.push(c);
        text += c.text;
        tokens = c.stats.tokens;
        done = c.done ?? done;
        this.emit('token', c);
      }
      if (!done) {
        done = 'stop';
        r.finish('stop');
      }
      if (req.newChat) this.chat = { turns: 0, image: null };
      if (!(done === 'interrupted' && tokens === 0)) {
        if (req.newChat) this.chat.image = img;
        this.chat.turns++;
      }
      this.emit('done', { reason: done, text, tokens });
      return text;
    } catch (e) {
      r.fail(`${errorSentence(e)} The next message starts a new conversation.`);
      this.chat = { turns: 0, image: null };
      this.emit('error', { error: e, message: errorSentence(e) });
      this.emit('done', { reason: 'error', text, tokens });
      throw e;
    }
  }

  private wire(): void {
    const u = this.ui;
    u.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.sendFromUi();
    });
    u.message.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        if (!u.send.disabled) this.sendFromUi();
      } else if (e.key === 'Escape') this.stop();
    });
    u.stop.addEventListener('click', () => this.stop());
    // After a failed load (network, server, file): the same load again, without reloading the page.
    u.retry.addEventListener('click', () => {
      if (this.lastLoad) this.load(this.lastLoad.model, this.lastLoad.encoder).catch(() => undefined);
    });
    u.newChat.addEventListener('click', () => void this.newChat());
    u.image.addEventListener('change', () => this.pick(u.image.files?.[0] ?? null));
    u.removeImage.addEventListener('click', () => {
      u.image.value = '';
      this.pick(null);
    });
    this.addEventListener('dragover', (e) => {
      if (e.dataTransfer?.types.includes('Files')) e.preventDefault();
    });
    this.addEventListener('drop', (e) => {
      const f = [...(e.dataTransfer?.files ?? [])].find((x) => x.type.startsWith('image/'));
      if (f) {
        e.preventDefault();
        this.pick(f);
      }
    });
    u.message.addEventListener('paste', (e) => {
      const f = [...(e.clipboardData?.files ?? [])].find((x) => x.type.startsWith('image/'));
      if (f) {
        e.preventDefault();
        this.pick(f);
      }
    });
  }

  private sendFromUi(): void {
    const text = this.ui.message.value;
    if (!text.trim()) {
      this.ui.message.focus();
      return;
    }
    this.ui.message.value = '';
    this.send(text).then(
      () => this.ui.message.focus(),
      () => undefined, // shown in the transcript and fired as `error`
    );
  }

  private pick(blob: Blob | null): void {
    if (this.pickedUrl) URL.revokeObjectURL(this.pickedUrl);
    this.picked = blob;
    this.pickedUrl = blob ? URL.createObjectURL(blob) : null;
    this.ui.preview.hidden = !blob;
    this.ui.removeImage.hidden = !blob;
    if (this.pickedUrl) {
      this.ui.preview.src = this.pickedUrl;
      this.ui.preview.alt = `Selected image: ${(blob as File).name ?? 'image'}`;
    } else this.ui.preview.removeAttribute('src');
  }

  private onProgress(p: Progress): void {
    if (p.stage === 'weights' && p.total > 0) {
      this.ui.progress.max = p.total;
      this.ui.progress.value = Math.min(p.loaded, p.total);
    }
    this.emit('progress', p);
  }

  private scheduleLoad(): void {
    if (this.loadScheduled) return;
    this.loadScheduled = true;
    queueMicrotask(() => {
      this.loadScheduled = false;
      if (this.isConnected && this.model) this.load().catch(() => undefined); // reported by `error`
    });
  }

  private async unload(): Promise<void> {
    const old = this.vr;
    this.vr = null;
    this.engineInfo = null;
    this.transcript.clear();
    this.chat = { turns: 0, image: null };
    this.updateControls();
    await old?.dispose().catch(() => undefined);
    if (old && !this.loading) this.setState('idle', 'The model was unloaded.');
  }

  private providers(): ('webgpu' | 'wasm')[] | undefined {
    const raw = this.getAttribute('encoder-providers');
    if (!raw) return undefined;
    const list = raw.split(',').map((s) => s.trim()).filter((s): s is 'webgpu' | 'wasm' => s === 'webgpu' || s === 'wasm');
    return list.length ? list : undefined;
  }

  private resolve(src: ModelSource): ModelSource {
    return typeof src === 'string' ? new URL(src, document.baseURI).href : src;
  }

  private nameOf(src: ModelSource): string {
    if (typeof src !== 'string') return (src as File).name ?? 'the model';
    try {
      return decodeURIComponent(new URL(src, document.baseURI).pathname.split('/').pop() || src);
    } catch {
      return src;
    }
  }

  private setState(state: WidgetState, text?: string): void {
    this.dataset.state = state;
    this.ui.retry.hidden = state !== 'error' || !this.lastLoad;
    if (text !== undefined) {
      this.ui.status.dataset.state = state;
      this.ui.status.textContent = text;
    }
  }

  private updateControls(): void {
    this.ui.send.disabled = !this.vr || !!this.loading || !!this.generation;
    this.ui.stop.disabled = !this.generation;
  }

  private emit<K extends keyof VisualRwkvChatEventMap>(type: K, detail: VisualRwkvChatEventMap[K]['detail']): void {
    this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true }));
  }
}

/** Register `<visual-rwkv-chat>` (once; a no-op outside browsers). */
export function defineVisualRwkvChat(tag: string = TAG): void {
  const registry = (globalThis as { customElements?: CustomElementRegistry }).customElements;
  if (registry && !registry.get(tag)) registry.define(tag, tag === TAG ? VisualRwkvChat : class extends VisualRwkvChat {});
}

declare global {
  interface HTMLElementTagNameMap {
    'visual-rwkv-chat': VisualRwkvChat;
  }
}

