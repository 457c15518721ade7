/**
 * The engine behind every front end (worker, Node, CLI `chat`): model + encoder + projector + tokenizer + RNN state +
 * image-row cache, one generation at a time, interruptible between tokens and between prefill segments.
 *
 * Follow-up cost (spec §8.3): the state after each reply is kept, so a follow-up question prefills only its own
 * tokens. A new chat about an image already seen skips the encoder and projector (rows are cached per image content
 * hash); with the sandwich layout the question precedes the image, so the image rows are prefilled again.
 */
import type { Gpu } from '../engine/gpu';
import { createGpu, adapterName } from '../engine/gpu';
import { ContextOverflowError, InterruptedError, InvalidArgumentError, ShapeError, VisualRwkvError, WeightsFormatError } from '../errors';
import { openCheckpoint, type Checkpoint } from '../weights/checkpoint';
import { RwkvModel, type InputRow } from '../model/model';
import type { ModelConfig } from '../model/config';
import { recordProjectorTensors } from '../model/gpu-ready';
import type { RnnState } from '../model/state';
import { spliceImageAuto, bidirectionalSpan } from '../model/generate';
import { loadDefaultTokenizer, StreamDecoder, type WorldTokenizer } from '../text/tokenizer';
import { Sampler, APP_DEFAULTS, createRng } from '../text/sampler';
import { v6ImagePrompt, v7ImagePrompt, textTurn, STOP_TOKEN } from '../text/prompt';
import { decodeImage } from '../vision/decode';
import { clipPreprocess } from '../vision/preprocess';
import { ImageEncoder } from '../vision/encoder';
import { gridPool, ProjectorV6 } from '../vision/projector';
import { ProjectorV7 } from '../vision/projector_v7';
import type { ChatRequest, EngineOptions, GenerationSettings, ImageInput, Progress, TokenChunk } from '../types';
import { openSource, readAll, isNode } from './sources';

const DEFAULT_MAX_TOKENS = 512;
/** Longest prompt accepted in one turn (rows: text ids + image rows); the RNN itself has no limit. */
const DEFAULT_MAX_PROMPT_ROWS = 16384;
const IMAGE_CACHE_SIZE = 8;
/** RNN states after an image-first prefix kept on the GPU (each L·(2C + H·N²)·4 bytes: 12 MiB for 1.6B). */
const PREFIX_CACHE_SIZE = 4;
/** v7.00 released models use 1024 image tokens (spec §7.4; the training argparse default of 16 is not the release). */
const V7_TOKENS_PER_IMAGE = 1024;

export interface EngineInfo {
  arch: 'rwkv6' | 'rwkv7';
  L: number;
  C: number;
  V: number;
  adapter: string;
  hasEncoder: boolean;
  stateBytes: number;
  /** The model's sizes as read from the checkpoint (what a GPU-ready copy records). */
  config: ModelConfig;
}

async function defaultGpu(): Promise<Gpu> {
  if (isNode) {
    const { createNodeGpu } = await import('../engine/node');
    return createNodeGpu();
  }
  return createGpu((globalThis.navigator as Navigator | undefined)?.gpu);
}

export class VisualRwkvEngine {
  private busy = false;
  private interruptFlag = false;
  /** Generators handed out but not started yet; an interrupt() then applies to the next one that starts. */
  private pending = 0;
  private pendingInterrupt = false;
  private turns = 0;
  /** The last reply did not end with "\n\n" (length limit or interrupt): the next turn starts with it. */
  private needTerminator = false;
  private imageCache = new Map<string, InputRow[]>();
  private prefixCache = new Map<string, RnnState>();
  private projectorV7: ProjectorV7 | null = null;
  private tokensPerImage = V7_TOKENS_PER_IMAGE;
  private maxPromptRows = DEFAULT_MAX_PROMPT_ROWS;
  private before: RnnState | null = null;

  private constructor(
    readonly gpu: Gpu,
    readonly model: RwkvModel,
    readonly tokenizer: WorldTokenizer,
    private readonly encoder: ImageEncoder | null,
    private readonly projector: ProjectorV6 | null,
    private readonly onProgress?: (p: Progress) => void,
  ) {}

  /**
   * Load a model (and optionally an image encoder).
   * @example
   * const engine = await VisualRwkvEngine.create({ model: 'VisualRWKV-v060-1B6-v1.0-20240612.pth', encoder: 'vision_model.onnx' });
   * for await (const c of engine.chat({ text: 'What is in the picture?', image })) process.stdout.write(c.text);
   */
  static async create(opts: EngineOptions, gpu?: Gpu): Promise<VisualRwkvEngine> {
    const g = gpu ?? (await defaultGpu());
    const src = await openSource(opts.model);
    let model: RwkvModel | null = null;
    let encoder: ImageEncoder | null = null;
    let projector: ProjectorV6 | null = null;
    try {
      const ckpt: Checkpoint = await openCheckpoint(src);
      model = await RwkvModel.load(g, ckpt, { onProgress: opts.onProgress, maxRows: opts.maxRows, sink: opts.recordTensors });
      if (opts.recordTensors) await recordProjectorTensors(ckpt, opts.recordTensors);
      if (opts.encoder !== undefined) {
      if (model.cfg.projector.kind !== 'linear') {
        throw new WeightsFormatError(`${ckpt.name}: no VisualRWKV-6 projector (proj.weight) in this checkpoint; an image encoder cannot be used with it`);
      }
      opts.onProgress?.({ stage: 'encoder', loaded: 0, total: 1 });
      projector = await ProjectorV6.load(g, ckpt);
      encoder = await ImageEncoder.create(await readAll(opts.encoder), { executionProviders: opts.encoderProviders });
      opts.onProgress?.({ stage: 'encoder', loaded: 1, total: 1 });
      }
      const projectorV7 = model.cfg.projector.kind === 'gated_v7' ? await ProjectorV7.load(g, ckpt) : null;
      const tokenizer = await loadDefaultTokenizer();
      const engine = new VisualRwkvEngine(g, model, tokenizer, encoder, projector, opts.onProgress);
      engine.projectorV7 = projectorV7;
      if (opts.tokensPerImage !== undefined) engine.tokensPerImage = opts.tokensPerImage;
      if (opts.maxPromptRows !== undefined) engine.maxPromptRows = opts.maxPromptRows;
      return engine;
    } catch (e) {
      model?.destroy();
      projector?.destroy();
      throw e;
    } finally {
      if (src !== opts.model) await src.close?.(); // close what we opened, never the caller's ByteSource
    }
  }

  get info(): EngineInfo {
    const c = this.model.cfg;
    return { arch: c.arch, L: c.L, C: c.C, V: c.V, adapter: adapterName(this.gpu), hasEncoder: !!this.encoder, stateBytes: this.model.state.byteLength, config: { ...c } };
  }

  /** Stop the running generation within one token or one prefill segment. */
  interrupt(): void {
    if (this.busy) this.interruptFlag = true;
    else if (this.pending > 0) this.pendingInterrupt = true;
  }

  /** Forget the conversation (zero the RNN state). Image rows stay cached. */
  reset(): void {
    this.model.reset();
    this.turns = 0;
    this.needTerminator = false;
  }

  dispose(): void {
    this.before?.destroy();
    for (const st of this.prefixCache.values()) st.destroy();
    this.prefixCache.clear();
    this.projectorV7?.destroy();
    this.model.destroy();
    this.projector?.destroy();
    this.encoder?.dispose();
  }

  /** One chat turn: streams the reply. The first turn (or `newChat`) may carry an image. */
  chat(req: ChatRequest): AsyncGenerator<TokenChunk> {
    this.pending++;
    return this.chatTurn(req);
  }

  private async *chatTurn(req: ChatRequest): AsyncGenerator<TokenChunk> {
    this.begin();
    try {
      const t0 = performance.now();
      if (typeof req.text !== 'string') throw new InvalidArgumentError('chat needs a text message');
      const hasImage = req.image !== undefined || req.imageRows !== undefined || req.imageFeatures !== undefined;
      if (req.newChat || hasImage) this.reset();
      let inputs: InputRow[];
      let bidirectional;
      let encoderRan = false;
      let prefixRows = 0; // rows of an image-first prefix prefilled this turn (0 when its cached state was reused)
      if (hasImage) {
        let img: { rows: Float32Array[]; encoderRan: boolean; key: string };
        try {
          img = await this.imageInputRows(req);
        } catch (e) {
          if (!(e instanceof InterruptedError)) throw e;
          yield { text: '', id: -1, stats: this.stats({ t0, encoderRan: true }, 0, 0, 0), done: 'interrupted' };
          return;
        }
        encoderRan = img.encoderRan;
        const v7 = this.model.cfg.arch === 'rwkv7';
        const position = v7 ? 'first' : (req.position ?? 'middle');
        const ids = v7 ? v7ImagePrompt(this.tokenizer, req.text, img.rows.length) : v6ImagePrompt(this.tokenizer, req.text, position);
        const spliced = spliceImageAuto(ids, img.rows);
        inputs = spliced.inputs;
        // v6.0 releases use the bidirectional scan; v7.00 does not (it can be asked for explicitly).
        if (req.bidirectional ?? !v7) bidirectional = bidirectionalSpan(spliced.image!);
        if (position === 'first') {
          // Image-first layout: the state after "User: " + image does not depend on the question — cache it.
          const end = spliced.image!.start + spliced.image!.rows;
          const key = `${img.key}|${bidirectional ? 'bidi' : 'uni'}`;
          const cached = this.prefixCache.get(key);
          if (cached) {
            this.model.state.copyFrom(cached);
            this.prefixCache.delete(key);
            this.prefixCache.set(key, cached);
          } else {
            prefixRows = end;
            try {
              await this.model.prefill(inputs.slice(0, end), { bidirectional, checkAbort: this.checkAbort, logits: false });
            } catch (e) {
              if (!(e instanceof InterruptedError)) throw e;
              this.reset();
              yield { text: '', id: -1, stats: this.stats({ t0, encoderRan }, 0, 0, end), done: 'interrupted' };
              return;
            }
            this.prefixCache.set(key, this.model.state.snapshot('image-prefix'));
            if (this.prefixCache.size > PREFIX_CACHE_SIZE) {
              const oldest = this.prefixCache.keys().next().value!;
              this.prefixCache.get(oldest)!.destroy();
              this.prefixCache.delete(oldest);
            }
          }
          inputs = inputs.slice(end);
          bidirectional = undefined;
        }
      } else {
        inputs = textTurn(this.tokenizer, req.text);
        if (this.needTerminator) inputs.unshift(STOP_TOKEN);
      }
      yield* this.run(inputs, req, { t0, encoderRan, bidirectional, prefixRows });
    } finally {
      this.end();
    }
  }

  /** Continue from the current state with raw inputs (ids or rows), streaming sampled tokens. */
  generate(inputs: InputRow[], settings: GenerationSettings = {}): AsyncGenerator<TokenChunk> {
    this.pending++;
    return this.generateRaw(inputs, settings);
  }

  private async *generateRaw(inputs: InputRow[], settings: GenerationSettings): AsyncGenerator<TokenChunk> {
    this.begin();
    try {
      yield* this.run(inputs, settings, { t0: performance.now(), encoderRan: false });
    } finally {
      this.end();
    }
  }

  private begin(): void {
    this.pending = Math.max(0, this.pending - 1);
    if (this.busy) throw new InvalidArgumentError('a generation is already running; interrupt() it or wait for it to end');
    this.busy = true;
    this.interruptFlag = this.pendingInterrupt;
    this.pendingInterrupt = false;
  }

  private end(): void {
    this.busy = false;
    this.interruptFlag = false;
  }

  private checkAbort = (): void => {
    if (this.interruptFlag) throw new InterruptedError('interrupted');
  };

  private async *run(
    inputs: InputRow[],
    settings: GenerationSettings,
    ctx: { t0: number; encoderRan: boolean; bidirectional?: ReturnType<typeof bidirectionalSpan>; prefixRows?: number },
  ): AsyncGenerator<TokenChunk> {
    const maxTokens = settings.maxTokens ?? DEFAULT_MAX_TOKENS;
    if (!(maxTokens >= 1)) throw new InvalidArgumentError('maxTokens must be at least 1');
    if (inputs.length > this.maxPromptRows) {
      throw new ContextOverflowError(`the prompt has ${inputs.length} rows; the limit is ${this.maxPromptRows} (EngineOptions.maxPromptRows)`);
    }
    // Keep the state from before this turn so an interrupted prefill loses nothing.
    if (!this.before) this.before = this.model.state.snapshot('before-turn');
    else this.before.copyFrom(this.model.state);
    this.onProgress?.({ stage: 'prefill', loaded: 0, total: inputs.length });
    let logits: Float32Array;
    try {
      logits = (await this.model.prefill(inputs, { bidirectional: ctx.bidirectional, checkAbort: this.checkAbort }))!;
    } catch (e) {
      if (e instanceof InterruptedError) {
        this.model.state.copyFrom(this.before);
        yield { text: '', id: -1, stats: this.stats(ctx, 0, 0, inputs.length), done: 'interrupted' };
        return;
      }
      throw e;
    }
    this.onProgress?.({ stage: 'prefill', loaded: inputs.length, total: inputs.length });
    this.turns++;
    const sampler = new Sampler({ ...APP_DEFAULTS, ...settings.sampler }, createRng(settings.seed ?? (Math.random() * 2 ** 32) >>> 0));
    const sd = new StreamDecoder(this.tokenizer);
    let n = 0;
    let tFirst = 0;
    for (;;) {
      const { id, stop } = sampler.next(logits);
      const rec = settings.recordLogits ? { logits } : {};
      if (n === 0) tFirst = performance.now();
      n++;
      if (stop) {
        // Keep the turn's end in the state: "\n\n" (also after another stop id) so the next turn follows the template.
        await this.model.prefill([STOP_TOKEN], { logits: false });
        this.needTerminator = false;
        yield { text: sd.flush(), id, stats: this.stats(ctx, n, tFirst, inputs.length), done: 'stop', ...rec };
        return;
      }
      const text = sd.push(id);
      if (n >= maxTokens || this.interruptFlag) {
        await this.model.prefill([id], { logits: false });
        this.needTerminator = true;
        yield { text: text + sd.flush(), id, stats: this.stats(ctx, n, tFirst, inputs.length), done: n >= maxTokens ? 'length' : 'interrupted', ...rec };
        return;
      }
      yield { text, id, stats: this.stats(ctx, n, tFirst, inputs.length), ...rec };
      logits = await this.model.decode(id);
    }
  }

  private stats(ctx: { t0: number; encoderRan: boolean; prefixRows?: number }, tokens: number, tFirst: number, rows: number) {
    const now = performance.now();
    const prefillRows = rows + (ctx.prefixRows ?? 0);
    return {
      tokens,
      tokensPerSecond: tokens > 1 && now > tFirst ? ((tokens - 1) * 1000) / (now - tFirst) : 0,
      timeToFirstTokenMs: tFirst ? tFirst - ctx.t0 : 0,
      prefillRows,
      encoderRan: ctx.encoderRan,
    };
  }

  /** Rows for this turn's image: from an image (v6 encoder), backbone features (the checkpoint's projector) or rows. */
  private async imageInputRows(req: ChatRequest): Promise<{ rows: Float32Array[]; encoderRan: boolean; key: string }> {
    const C = this.model.cfg.C;
    if (req.imageRows) {
      const rows = req.imageRows;
      if (rows.length === 0 || rows.some((r) => r.length !== C)) throw new ShapeError(`imageRows must be non-empty rows of C = ${C} values`);
      return { rows, encoderRan: false, key: `rows:${await sha256Rows(rows)}` };
    }
    if (req.imageFeatures) {
      const f = req.imageFeatures;
      if (f.data.length !== f.rows * f.dim) throw new ShapeError(`imageFeatures: ${f.data.length} values for ${f.rows}×${f.dim}`);
      const key = `features:${await sha256(new Uint8Array(f.data.buffer, f.data.byteOffset, f.data.byteLength))}:${req.gridSize ?? -1}:${this.tokensPerImage}`;
      const hit = this.imageCache.get(key);
      if (hit) return { rows: hit as Float32Array[], encoderRan: false, key };
      let rows: Float32Array[];
      if (this.projectorV7) {
        rows = await this.projectorV7.project(f.data, f.rows, Math.min(this.tokensPerImage, f.rows));
      } else if (this.projector) {
        const pooled = gridPool(f.data, f.rows, f.dim, req.gridSize ?? -1);
        rows = await this.projector.project(pooled.rows, pooled.n);
      } else {
        throw new InvalidArgumentError('this checkpoint has no projector: give imageRows instead of imageFeatures');
      }
      this.cacheRows(key, rows);
      return { rows, encoderRan: false, key };
    }
    if (this.model.cfg.arch !== 'rwkv6') {
      throw new InvalidArgumentError('VisualRWKV-7 image encoders (SAM + DINOv2 + SigLIP) are not available in the browser yet: give imageFeatures or imageRows');
    }
    const img = await this.imageRows(req.image!, req.gridSize ?? -1);
    return img;
  }

  private cacheRows(key: string, rows: InputRow[]): void {
    this.imageCache.set(key, rows);
    if (this.imageCache.size > IMAGE_CACHE_SIZE) this.imageCache.delete(this.imageCache.keys().next().value!);
  }

  /** Image → rows before ln0, cached by content hash and grid size. */
  private async imageRows(image: ImageInput, grid: number): Promise<{ rows: Float32Array[]; encoderRan: boolean; key: string }> {
    if (!this.encoder || !this.projector) throw new InvalidArgumentError('no image encoder was loaded: pass `encoder` to use images');
    const raw = image instanceof Uint8Array ? image : typeof Blob !== 'undefined' && image instanceof Blob ? new Uint8Array(await image.arrayBuffer()) : null;
    const pixels = raw ?? (image as { data: Uint8Array }).data;
    const key = `${await sha256(pixels)}:${grid}:${raw ? 'enc' : `${(image as { width: number }).width}x${(image as { height: number }).height}`}`;
    const hit = this.imageCache.get(key);
    if (hit) {
      this.imageCache.delete(key);
      this.imageCache.set(key, hit);
      return { rows: hit as Float32Array[], encoderRan: false, key };
    }
    this.onProgress?.({ stage: 'image', loaded: 0, total: 3 });
    const rgb = raw ? await decodeImage(raw) : (image as { width: number; height: number; data: Uint8Array });
    const px = clipPreprocess(rgb);
    this.checkAbort();
    this.onProgress?.({ stage: 'image', loaded: 1, total: 3 });
    const out = await this.encoder.encode(px);
    this.checkAbort();
    this.onProgress?.({ stage: 'image', loaded: 2, total: 3 });
    const pooled = gridPool(out.hidden, out.tokens, out.dim, grid);
    const rows = await this.projector.project(pooled.rows, pooled.n);
    this.onProgress?.({ stage: 'image', loaded: 3, total: 3 });
    this.cacheRows(key, rows);
    return { rows, encoderRan: true, key };
  }
}

async function sha256Rows(rows: Float32Array[]): Promise<string> {
  const all = new Float32Array(rows.reduce((n, r) => n + r.length, 0));
  let o = 0;
  for (const r of rows) {
    all.set(r, o);
    o += r.length;
  }
  return sha256(new Uint8Array(all.buffer));
}

async function sha256(bytes: Uint8Array): Promise<string> {
  const d = await crypto.subtle.digest('SHA-256', bytes as BufferSource);
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, '0')).join('');
}

export { VisualRwkvError };
