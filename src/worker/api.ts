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
import { InterruptedError, InvalidArgumentError, VisualRwkvError, WeightsFormatError } from '../errors';
import { openCheckpoint, type Checkpoint } from '../weights/checkpoint';
import { RwkvModel, type InputRow } from '../model/model';
import { spliceImage, bidirectionalSpan } from '../model/generate';
import { loadDefaultTokenizer, StreamDecoder, type WorldTokenizer } from '../text/tokenizer';
import { Sampler, APP_DEFAULTS, createRng } from '../text/sampler';
import { v6ImagePrompt, textTurn, STOP_TOKEN } from '../text/prompt';
import { decodeImage } from '../vision/decode';
import { clipPreprocess } from '../vision/preprocess';
import { ImageEncoder } from '../vision/encoder';
import { gridPool, ProjectorV6 } from '../vision/projector';
import type { ChatRequest, EngineOptions, GenerationSettings, ImageInput, Progress, TokenChunk } from '../types';
import { openSource, readAll, isNode } from './sources';

const DEFAULT_MAX_TOKENS = 512;
const IMAGE_CACHE_SIZE = 8;

export interface EngineInfo {
  arch: 'rwkv6' | 'rwkv7';
  L: number;
  C: number;
  V: number;
  adapter: string;
  hasEncoder: boolean;
  stateBytes: number;
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
  private before: ReturnType<RwkvModel['state']['snapshot']> | null = null;

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
      model = await RwkvModel.load(g, ckpt, { onProgress: opts.onProgress, maxRows: opts.maxRows });
      if (opts.encoder !== undefined) {
      if (model.cfg.projector.kind !== 'linear') {
        throw new WeightsFormatError(`${ckpt.name}: no VisualRWKV-6 projector (proj.weight) in this checkpoint; an image encoder cannot be used with it`);
      }
      opts.onProgress?.({ stage: 'encoder', loaded: 0, total: 1 });
      projector = await ProjectorV6.load(g, ckpt);
      encoder = await ImageEncoder.create(await readAll(opts.encoder), { executionProviders: opts.encoderProviders });
      opts.onProgress?.({ stage: 'encoder', loaded: 1, total: 1 });
      }
      const tokenizer = await loadDefaultTokenizer();
      return new VisualRwkvEngine(g, model, tokenizer, encoder, projector, opts.onProgress);
    } catch (e) {
      model?.destroy();
      projector?.destroy();
      throw e;
    } finally {
      await src.close?.();
    }
  }

  get info(): EngineInfo {
    const c = this.model.cfg;
    return { arch: c.arch, L: c.L, C: c.C, V: c.V, adapter: adapterName(this.gpu), hasEncoder: !!this.encoder, stateBytes: this.model.state.byteLength };
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
      if (req.newChat || req.image) this.reset();
      let inputs: InputRow[];
      let bidirectional;
      let encoderRan = false;
      if (req.image) {
        if (this.model.cfg.arch !== 'rwkv6') throw new InvalidArgumentError('images with RWKV-7 models are not supported yet');
        let img: { rows: Float32Array[]; encoderRan: boolean };
        try {
          img = await this.imageRows(req.image, req.gridSize ?? -1);
        } catch (e) {
          if (!(e instanceof InterruptedError)) throw e;
          yield { text: '', id: -1, stats: this.stats({ t0, encoderRan: true }, 0, 0, 0), done: 'interrupted' };
          return;
        }
        encoderRan = img.encoderRan;
        const spliced = spliceImage(v6ImagePrompt(this.tokenizer, req.text, req.position ?? 'middle'), img.rows);
        inputs = spliced.inputs;
        if (req.bidirectional ?? true) bidirectional = bidirectionalSpan(spliced.image!);
      } else {
        inputs = textTurn(this.tokenizer, req.text);
        if (this.needTerminator) inputs.unshift(STOP_TOKEN);
      }
      yield* this.run(inputs, req, { t0, encoderRan, bidirectional });
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
    ctx: { t0: number; encoderRan: boolean; bidirectional?: ReturnType<typeof bidirectionalSpan> },
  ): AsyncGenerator<TokenChunk> {
    const maxTokens = settings.maxTokens ?? DEFAULT_MAX_TOKENS;
    if (!(maxTokens >= 1)) throw new InvalidArgumentError('maxTokens must be at least 1');
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

  private stats(ctx: { t0: number; encoderRan: boolean }, tokens: number, tFirst: number, prefillRows: number) {
    const now = performance.now();
    return {
      tokens,
      tokensPerSecond: tokens > 1 && now > tFirst ? ((tokens - 1) * 1000) / (now - tFirst) : 0,
      timeToFirstTokenMs: tFirst ? tFirst - ctx.t0 : 0,
      prefillRows,
      encoderRan: ctx.encoderRan,
    };
  }

  /** Image → rows before ln0, cached by content hash and grid size. */
  private async imageRows(image: ImageInput, grid: number): Promise<{ rows: Float32Array[]; encoderRan: boolean }> {
    if (!this.encoder || !this.projector) throw new InvalidArgumentError('no image encoder was loaded: pass `encoder` to use images');
    const raw = image instanceof Uint8Array ? image : typeof Blob !== 'undefined' && image instanceof Blob ? new Uint8Array(await image.arrayBuffer()) : null;
    const pixels = raw ?? (image as { data: Uint8Array }).data;
    const key = `${await sha256(pixels)}:${grid}:${raw ? 'enc' : `${(image as { width: number }).width}x${(image as { height: number }).height}`}`;
    const hit = this.imageCache.get(key);
    if (hit) {
      this.imageCache.delete(key);
      this.imageCache.set(key, hit);
      return { rows: hit as Float32Array[], encoderRan: false };
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
    this.imageCache.set(key, rows);
    if (this.imageCache.size > IMAGE_CACHE_SIZE) this.imageCache.delete(this.imageCache.keys().next().value!);
    return { rows, encoderRan: true };
  }
}

async function sha256(bytes: Uint8Array): Promise<string> {
  const d = await crypto.subtle.digest('SHA-256', bytes as BufferSource);
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, '0')).join('');
}

export { VisualRwkvError };
