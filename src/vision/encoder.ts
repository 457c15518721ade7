/**
 * The v6.0 image encoder (spec §6.1): an ONNX CLIP vision tower run by onnxruntime-web. It maps normalised
 * `pixel_values` [1, 3, S, S] (S = 336 for openai/clip-vit-large-patch14-336) to `last_hidden_state` [1, 577, D]
 * (the last encoder layer, no post-LN; CLS at row 0, then the 24×24 patches row-major).
 *
 * This is the ONLY module that imports onnxruntime-web; it does so lazily (`import()`), so text-only use never
 * downloads ORT. Accepted models: any ONNX graph with the single input `pixel_values` (float32 or float16) and an
 * output `last_hidden_state` (float32 or float16; other outputs such as `pooler_output` / `image_embeds` are ignored),
 * e.g. the public `vision_model.onnx`, `vision_model_fp16.onnx`, `vision_model_quantized.onnx` exports of CLIP-L/336
 * and tests/fixtures/vision/tiny_clip_vit_shared.onnx. fp16 models get their input converted from f32 (round to
 * nearest even) and their output widened back to f32.
 *
 * Runtime files: in Node, ORT's Node build loads its own WASM from node_modules (single-threaded by default here).
 * In browsers the JSEP glue + binary are the vite-emitted assets of `ort-assets.ts` unless `wasmPaths` is given.
 */
import type * as Ort from 'onnxruntime-web';
import { EncoderLoadError, ShapeError, VisualRwkvError } from '../errors';
import { f16ToF32 } from '../weights/dtype';

/** onnxruntime-web execution providers the encoder may use. */
export type EncoderProvider = 'webgpu' | 'wasm';

/** Progress of loading the encoder (download of a URL model, then session creation), in bytes. */
export interface EncoderProgress {
  stage: 'encoder';
  loaded: number;
  total: number;
}

export interface ImageEncoderOptions {
  /** Tried in order (ORT places unsupported ops on the CPU). Default: ['webgpu', 'wasm'] in a browser with
   *  `navigator.gpu`, else ['wasm']. If session creation fails with a list that has 'wasm', it is retried wasm-only. */
  executionProviders?: EncoderProvider[];
  onProgress?: (p: EncoderProgress) => void;
  /** Browser only: URL prefix (ending in '/') serving `ort-wasm-simd-threaded.jsep.{mjs,wasm}` (copies of
   *  node_modules/onnxruntime-web/dist/). Default: the assets vite emits for `ort-assets.ts`. Ignored in Node. */
  wasmPaths?: string;
  /** WASM threads. Default: 1 in Node; in browsers ORT's own default (min(4, ⌈cores/2⌉) when the page is
   *  cross-origin isolated, else 1). */
  numThreads?: number;
}

/** `last_hidden_state` of one image as f32 rows. */
export interface EncoderOutput {
  /** (tokens, dim) row-major. */
  hidden: Float32Array;
  /** 577 for CLIP ViT-L/14-336 (CLS + 24×24 patches). */
  tokens: number;
  /** 1024 for CLIP ViT-L; 32 for the tiny fixture tower. */
  dim: number;
}

/** Input and output names the encoder requires (the Hugging Face / optimum export names). */
export const ENCODER_INPUT = 'pixel_values';
export const ENCODER_OUTPUT = 'last_hidden_state';
/** Image side used when the model's input height/width are symbolic (CLIP ViT-L/14-336). */
export const DEFAULT_IMAGE_SIZE = 336;

const isNode = typeof process !== 'undefined' && !!process.versions?.node && typeof window === 'undefined';

type OrtModule = typeof Ort;
let ortModule: Promise<OrtModule> | null = null;
let envConfigured = false;

/** Import ORT once and set its global WASM flags before the first session (ORT reads them only at first init). */
async function loadOrt(opts: ImageEncoderOptions): Promise<OrtModule> {
  ortModule ??= import('onnxruntime-web');
  let ort: OrtModule;
  try {
    ort = await ortModule;
  } catch (e) {
    ortModule = null;
    throw new EncoderLoadError(`onnxruntime-web could not be loaded: ${errText(e)}`, { cause: e });
  }
  if (!envConfigured) {
    if (!isNode) {
      if (opts.wasmPaths !== undefined) ort.env.wasm.wasmPaths = opts.wasmPaths;
      else if (ort.env.wasm.wasmPaths === undefined) {
        try {
          ort.env.wasm.wasmPaths = (await import('./ort-assets')).ORT_WASM_PATHS;
        } catch (e) {
          throw new EncoderLoadError(`the onnxruntime-web WASM asset URLs could not be loaded (pass opts.wasmPaths): ${errText(e)}`, { cause: e });
        }
      }
    }
    if (opts.numThreads !== undefined) ort.env.wasm.numThreads = opts.numThreads;
    else if (isNode) ort.env.wasm.numThreads = 1;
    envConfigured = true;
  }
  return ort;
}

/** logSeverityLevel 3 = errors only: ORT's placement warnings (shape ops on the CPU) would go to console.error. */
function sessionOptions(eps: EncoderProvider[]): Ort.InferenceSession.SessionOptions {
  return { executionProviders: eps, graphOptimizationLevel: 'all', logSeverityLevel: 3 };
}

function defaultProviders(): EncoderProvider[] {
  const nav = (globalThis as { navigator?: { gpu?: unknown } }).navigator;
  return !isNode && nav?.gpu ? ['webgpu', 'wasm'] : ['wasm'];
}

/** f32 → IEEE binary16 bits, round to nearest even (subnormals, ±Inf on overflow, NaN kept). */
export function f32ToF16(x: number): number {
  f32[0] = x;
  const u = u32[0]!;
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // below half the smallest subnormal
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let h = mant >>> shift;
    if (rest > half || (rest === half && h & 1)) h++;
    return sign | h; // a carry into the exponent field gives the smallest normal, as it should
  }
  const rest = mant & 0x1fff;
  let h = (e << 10) | (mant >>> 13);
  if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++; // may carry into the exponent, up to Inf: correct
  return sign | h;
}
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/**
 * A loaded ONNX vision tower.
 *
 * @example
 * const enc = await ImageEncoder.create('/models/vision_model_fp16.onnx', { onProgress: (p) => bar(p.loaded, p.total) });
 * const { hidden, tokens, dim } = await enc.encode(clipPreprocess(rgb)); // (577, 1024)
 * await enc.dispose();
 */
export class ImageEncoder {
  private queue: Promise<unknown> = Promise.resolve();
  private session: Ort.InferenceSession | null;

  private constructor(
    private readonly ort: OrtModule,
    session: Ort.InferenceSession,
    /** Shown in error messages. */
    readonly name: string,
    /** The providers the session was created with (ORT silently drops unavailable ones, e.g. 'webgpu' in Node). */
    readonly executionProviders: readonly EncoderProvider[],
    /** Side S of the square input [1, 3, S, S]. */
    readonly imageSize: number,
    /** Element type the model takes for `pixel_values`. */
    readonly inputType: 'float32' | 'float16',
  ) {
    this.session = session;
  }

  /**
   * Load an ONNX vision tower from bytes or a URL (in Node also a file path). Throws EncoderLoadError when the
   * runtime cannot start, the bytes are not a valid ONNX model, or the model lacks `pixel_values` → `last_hidden_state`
   * with the expected shapes and types.
   */
  static async create(model: Uint8Array | string, opts: ImageEncoderOptions = {}): Promise<ImageEncoder> {
    const name = typeof model === 'string' ? model : `ONNX model (${model.byteLength} bytes)`;
    const eps = opts.executionProviders ?? defaultProviders();
    if (eps.length === 0 || eps.some((p) => p !== 'webgpu' && p !== 'wasm')) {
      throw new EncoderLoadError(`${name}: executionProviders must be a non-empty list of 'webgpu' | 'wasm', got [${eps.join(', ')}]`);
    }
    const ort = await loadOrt(opts);
    const data = await fetchModel(model, name, opts.onProgress);
    const total = typeof data === 'string' ? 1 : data.byteLength;

    let session: Ort.InferenceSession;
    let used: EncoderProvider[] = [...eps];
    try {
      session = await ort.InferenceSession.create(data as Uint8Array, sessionOptions(used));
    } catch (first) {
      if (!(eps.length > 1 && eps.includes('wasm'))) throw loadError(name, used, first);
      // e.g. the WebGPU EP could not get an adapter or compile the graph: fall back to plain WASM.
      used = ['wasm'];
      try {
        session = await ort.InferenceSession.create(data as Uint8Array, sessionOptions(used));
      } catch (second) {
        throw loadError(name, used, second, first);
      }
    }
    try {
      const { imageSize, inputType } = validateSession(session, name);
      opts.onProgress?.({ stage: 'encoder', loaded: total, total });
      return new ImageEncoder(ort, session, name, used, imageSize, inputType);
    } catch (e) {
      await session.release().catch(() => undefined);
      throw e;
    }
  }

  /**
   * Run the tower on one preprocessed image: `pixelValues` is [1, 3, S, S] f32 (CHW, normalised). Calls are
   * serialised. Throws ShapeError for a wrong length, VisualRwkvError if the runtime fails.
   */
  encode(pixelValues: Float32Array): Promise<EncoderOutput> {
    const S = this.imageSize;
    if (!(pixelValues instanceof Float32Array) || pixelValues.length !== 3 * S * S) {
      const got = pixelValues instanceof Float32Array ? `${pixelValues.length} floats` : `a ${(pixelValues as object)?.constructor?.name ?? typeof pixelValues}`;
      return Promise.reject(new ShapeError(`${this.name}: pixel_values must be a Float32Array of [1, 3, ${S}, ${S}] = ${3 * S * S} floats, got ${got}`));
    }
    const run = this.queue.then(() => this.run(pixelValues));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Release the ORT session (idempotent). */
  async dispose(): Promise<void> {
    const s = this.session;
    this.session = null;
    if (s) {
      await this.queue;
      await s.release().catch(() => undefined);
    }
  }

  private async run(pixelValues: Float32Array): Promise<EncoderOutput> {
    const session = this.session;
    if (!session) throw new VisualRwkvError(`${this.name}: the image encoder was disposed`);
    const S = this.imageSize;
    const dims = [1, 3, S, S];
    const input =
      this.inputType === 'float16'
        ? new this.ort.Tensor('float16', Uint16Array.from(pixelValues, f32ToF16), dims)
        : new this.ort.Tensor('float32', pixelValues, dims);
    let out: Ort.InferenceSession.OnnxValueMapType;
    try {
      out = await session.run({ [ENCODER_INPUT]: input }, [ENCODER_OUTPUT]);
    } catch (e) {
      throw new VisualRwkvError(`${this.name}: the image encoder failed: ${errText(e)}`, { cause: e });
    }
    const t = out[ENCODER_OUTPUT] as Ort.Tensor | undefined;
    if (!t) throw new ShapeError(`${this.name}: the model returned no '${ENCODER_OUTPUT}'`);
    try {
      const d = t.dims;
      if (d.length !== 3 || d[0] !== 1 || !(d[1]! >= 1) || !(d[2]! >= 1)) {
        throw new ShapeError(`${this.name}: '${ENCODER_OUTPUT}' has shape [${d.join(', ')}], expected [1, tokens, dim]`);
      }
      const hidden = toF32Data(t, this.name);
      return { hidden, tokens: d[1]!, dim: d[2]! };
    } finally {
      t.dispose();
    }
  }
}

/** Model bytes, or (Node) a file path handed to ORT, which reads it itself. URLs are fetched with progress. */
async function fetchModel(model: Uint8Array | string, name: string, onProgress?: (p: EncoderProgress) => void): Promise<Uint8Array | string> {
  if (model instanceof Uint8Array) {
    onProgress?.({ stage: 'encoder', loaded: 0, total: model.byteLength });
    return model;
  }
  if (typeof model !== 'string') throw new EncoderLoadError(`the encoder model must be bytes (Uint8Array) or a URL string`);
  if (isNode && !/^(https?|data|blob):/i.test(model)) {
    return model.startsWith('file:') ? decodeURIComponent(new URL(model).pathname) : model;
  }
  let res: Response;
  try {
    const base = (globalThis as { location?: { href: string } }).location?.href;
    res = await fetch(base ? new URL(model, base).href : model);
  } catch (e) {
    throw new EncoderLoadError(`${name}: download failed: ${errText(e)}`, { cause: e });
  }
  if (!res.ok) throw new EncoderLoadError(`${name}: download failed: HTTP ${res.status} ${res.statusText}`);
  const total = Number(res.headers.get('content-length')) || 0;
  if (!res.body) return new Uint8Array(await res.arrayBuffer());
  const parts: Uint8Array[] = [];
  let loaded = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    loaded += value.byteLength;
    onProgress?.({ stage: 'encoder', loaded, total: Math.max(total, loaded) });
  }
  if (total && loaded !== total) throw new EncoderLoadError(`${name}: download ended after ${loaded} of ${total} bytes`);
  const bytes = new Uint8Array(loaded);
  let o = 0;
  for (const p of parts) {
    bytes.set(p, o);
    o += p.byteLength;
  }
  return bytes;
}

/** Check the graph's interface; returns the input side S and element type. Throws EncoderLoadError. */
function validateSession(session: Ort.InferenceSession, name: string): { imageSize: number; inputType: 'float32' | 'float16' } {
  const ins = session.inputNames;
  const outs = session.outputNames;
  if (!ins.includes(ENCODER_INPUT) || ins.length !== 1) {
    throw new EncoderLoadError(
      `${name}: the model's inputs are [${ins.join(', ')}]; an image encoder must have exactly one input '${ENCODER_INPUT}' ` +
        `(use the vision tower export, e.g. vision_model*.onnx, not the text or combined model)`,
    );
  }
  if (!outs.includes(ENCODER_OUTPUT)) {
    throw new EncoderLoadError(`${name}: the model's outputs are [${outs.join(', ')}]; it needs '${ENCODER_OUTPUT}' [batch, tokens, dim]`);
  }
  const inMeta = (session.inputMetadata ?? []).find((m) => m.name === ENCODER_INPUT);
  const outMeta = (session.outputMetadata ?? []).find((m) => m.name === ENCODER_OUTPUT);
  let imageSize = DEFAULT_IMAGE_SIZE;
  let inputType: 'float32' | 'float16' = 'float32';
  if (inMeta?.isTensor) {
    if (inMeta.type !== 'float32' && inMeta.type !== 'float16') {
      throw new EncoderLoadError(`${name}: '${ENCODER_INPUT}' has element type ${inMeta.type}; float32 or float16 is required`);
    }
    inputType = inMeta.type;
    const s = inMeta.shape;
    const [b, c, h, w] = s.map((d) => (typeof d === 'number' && d > 0 ? d : undefined));
    const fixedH = h ?? w;
    if (s.length !== 4 || (b !== undefined && b !== 1) || (c !== undefined && c !== 3) || (h !== undefined && w !== undefined && h !== w)) {
      throw new EncoderLoadError(`${name}: '${ENCODER_INPUT}' has shape [${s.join(', ')}]; expected [batch, 3, S, S]`);
    }
    if (fixedH !== undefined) imageSize = fixedH;
  }
  if (outMeta?.isTensor) {
    if (outMeta.type !== 'float32' && outMeta.type !== 'float16') {
      throw new EncoderLoadError(`${name}: '${ENCODER_OUTPUT}' has element type ${outMeta.type}; float32 or float16 is required`);
    }
    const s = outMeta.shape;
    if (s.length !== 3 || (typeof s[0] === 'number' && s[0] > 0 && s[0] !== 1)) {
      throw new EncoderLoadError(`${name}: '${ENCODER_OUTPUT}' has shape [${s.join(', ')}]; expected [batch, tokens, dim]`);
    }
  }
  return { imageSize, inputType };
}

/** Tensor data as a fresh-or-owned Float32Array (float16 widened; Uint16Array or Float16Array storage). */
function toF32Data(t: Ort.Tensor, name: string): Float32Array {
  if (t.type === 'float32') return t.data as Float32Array;
  if (t.type === 'float16') {
    const d = t.data as ArrayLike<number>;
    if (d instanceof Uint16Array) {
      const out = new Float32Array(d.length);
      for (let i = 0; i < d.length; i++) out[i] = f16ToF32(d[i]!);
      return out;
    }
    return Float32Array.from(d); // a real Float16Array: values are numbers already
  }
  throw new ShapeError(`${name}: '${ENCODER_OUTPUT}' came back as ${t.type}; float32 or float16 is required`);
}

function loadError(name: string, eps: readonly string[], e: unknown, earlier?: unknown): EncoderLoadError {
  const msg = errText(e);
  const also = earlier ? ` (with all requested providers it failed first with: ${errText(earlier)})` : '';
  const hint = /protobuf|no graph|model_path|invalid model|load model/i.test(msg)
    ? ' The bytes are not a complete ONNX model (truncated or wrong file?).'
    : /backend not found|no available backend/i.test(msg)
      ? ` The execution provider is not available here (Node has 'wasm' only; 'webgpu' needs a browser with WebGPU).`
      : '';
  return new EncoderLoadError(`${name}: onnxruntime-web could not create a session with [${eps.join(', ')}]: ${msg}${also}.${hint}`, { cause: e });
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
