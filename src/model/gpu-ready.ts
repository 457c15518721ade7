/**
 * GPU-ready copies of checkpoints: a `.safetensors` holding every weight buffer exactly as TensorReader uploaded it
 * (matrices 16-bit in the Linear layout, LoRA weights already transposed, time-mix vectors already stacked, vectors
 * f32), so a later load reads each buffer by name and uploads it without any conversion — no pickle/zip walk, no
 * strided gathers, no transposes, no dtype conversion. The projector's tensors (read by the engine, not by
 * TensorReader) are copied unchanged under their own keys.
 *
 * File layout: LM buffers under `rwkv.<key or stack label>`, projector tensors under their keys (`proj.*`), and
 * `__metadata__` = { format: 'visualrwkv-gpu-ready', version, source (id of the original), arch, config (the
 * ModelConfig JSON, prefix 'rwkv.'), transposed (JSON list of keys recorded transposed), stacked (JSON map
 * label → stacked keys) }. A copy of another layout version, or whose transposes/stacks differ from what this
 * loader asks for, is refused with WeightsFormatError (never misread): delete it and load the original again.
 *
 * @example
 * // Node: record while loading a .pth, write the copy, load it later.
 * const rec = new GpuReadyRecorder();
 * const writing = writeAll(rec.body());                    // e.g. into a file after a placeholder header
 * const model = await RwkvModel.load(gpu, ckpt, { sink: rec.sink });
 * rec.finish();
 * await writing;
 * const header = rec.header({ source: 'my-model', config: model.cfg }); // goes before the body
 */
import { InvalidArgumentError, WeightsFormatError } from '../errors';
import { DTYPE_BYTES, numel, type DType } from '../weights/dtype';
import type { Checkpoint } from '../weights/checkpoint';
import type { ModelConfig } from './config';
import type { TensorSink, UploadedTensor } from './upload';

/** `__metadata__.format` of a GPU-ready copy. */
export const GPU_READY_FORMAT = 'visualrwkv-gpu-ready';
/**
 * Layout version. Bump it whenever TensorReader (src/model/upload.ts) uploads something different for a key, or
 * the layer loaders stack/transpose differently under an existing label: older copies are then refused.
 */
export const GPU_READY_VERSION = 1;
/** LM buffers live under this prefix in a GPU-ready copy (its config's `prefix`). */
export const GPU_READY_PREFIX = 'rwkv.';

/** What TensorReader needs to read a GPU-ready copy. */
export interface GpuReadyLayout {
  /** Keys recorded transposed (read by `matrixT` as [out, in]). */
  transposed: Set<string>;
  /** Stack label → the keys stacked, in order. */
  stacked: Map<string, string[]>;
}

/** The metadata of a GPU-ready copy. */
export interface GpuReadyInfo {
  version: number;
  /** Id (or name) of the checkpoint it was made from. */
  source: string;
  arch: ModelConfig['arch'];
  config: ModelConfig;
}

/** Whether `ckpt` says it is a GPU-ready copy (any version). */
export function isGpuReady(ckpt: Pick<Checkpoint, 'metadata'>): boolean {
  return ckpt.metadata?.format === GPU_READY_FORMAT;
}

function parseJson<T>(ckpt: Checkpoint, key: string): T {
  const raw = ckpt.metadata?.[key];
  if (typeof raw !== 'string') throw new WeightsFormatError(`${ckpt.name}: GPU-ready copy without '${key}' in its metadata`);
  try {
    return JSON.parse(raw) as T;
  } catch (e) {
    throw new WeightsFormatError(`${ckpt.name}: GPU-ready copy with malformed '${key}' metadata (${(e as Error).message})`);
  }
}

function checkVersion(ckpt: Checkpoint): void {
  const v = Number(ckpt.metadata?.version);
  if (v !== GPU_READY_VERSION) {
    throw new WeightsFormatError(
      `${ckpt.name}: GPU-ready copy of layout version ${ckpt.metadata?.version ?? '?'}, but this version reads version ${GPU_READY_VERSION}; delete it and load the original checkpoint again`,
    );
  }
}

/**
 * The metadata of a GPU-ready copy; null for any other checkpoint. Throws WeightsFormatError for a copy of another
 * layout version or with malformed metadata.
 */
export function gpuReadyInfo(ckpt: Checkpoint): GpuReadyInfo | null {
  if (!isGpuReady(ckpt)) return null;
  checkVersion(ckpt);
  const config = parseJson<ModelConfig>(ckpt, 'config');
  const ints: (keyof ModelConfig)[] = ['L', 'C', 'H', 'N', 'F', 'V', 'loraMix', 'loraDecay', 'loraW', 'loraA', 'loraV', 'loraG'];
  const bad =
    !config || typeof config !== 'object' || (config.arch !== 'rwkv6' && config.arch !== 'rwkv7') || config.prefix !== GPU_READY_PREFIX ||
    ints.some((k) => !Number.isSafeInteger(config[k]) || (config[k] as number) < 0) || config.H * config.N !== config.C ||
    !config.projector || !['linear', 'gated_v7', 'none'].includes(config.projector.kind);
  if (bad) throw new WeightsFormatError(`${ckpt.name}: GPU-ready copy with an invalid model config in its metadata`);
  const emb = ckpt.tensors.get(GPU_READY_PREFIX + 'emb.weight');
  if (!emb || emb.shape[0] !== config.V || emb.shape[1] !== config.C) {
    throw new WeightsFormatError(`${ckpt.name}: GPU-ready copy whose '${GPU_READY_PREFIX}emb.weight' does not match its config (V=${config.V}, C=${config.C})`);
  }
  return { version: GPU_READY_VERSION, source: ckpt.metadata?.source ?? '', arch: config.arch, config };
}

/** The model config recorded in a GPU-ready copy; null for any other checkpoint (use readModelConfig then). */
export function gpuReadyConfig(ckpt: Checkpoint): ModelConfig | null {
  return gpuReadyInfo(ckpt)?.config ?? null;
}

/** The transposed keys and stacks of a GPU-ready copy; null for any other checkpoint. */
export function readGpuReadyLayout(ckpt: Checkpoint): GpuReadyLayout | null {
  if (!isGpuReady(ckpt)) return null;
  checkVersion(ckpt);
  const transposed = parseJson<unknown>(ckpt, 'transposed');
  const stacked = parseJson<unknown>(ckpt, 'stacked');
  const strings = (x: unknown): x is string[] => Array.isArray(x) && x.every((k) => typeof k === 'string');
  if (!strings(transposed) || !stacked || typeof stacked !== 'object' || !Object.values(stacked).every(strings)) {
    throw new WeightsFormatError(`${ckpt.name}: GPU-ready copy with malformed 'transposed'/'stacked' metadata`);
  }
  return { transposed: new Set(transposed), stacked: new Map(Object.entries(stacked as Record<string, string[]>)) };
}

/** A tensor stored in the file: name, dtype, shape, offsets relative to the data section. */
interface Entry {
  name: string;
  dtype: DType;
  shape: number[];
  begin: number;
  end: number;
}

export interface RecorderOptions {
  /** Bytes the recorder may hold before `sink` waits for `body()` to take them (default 64 MiB). */
  highWaterBytes?: number;
}

/** What `header` writes into `__metadata__`. */
export interface GpuReadyHeaderOptions {
  /** Id or name of the original checkpoint. */
  source: string;
  /** The loaded model's config (EngineInfo.config / RwkvModel.cfg). */
  config: ModelConfig;
}

/**
 * Collects the buffers of one model load (pass `sink` to RwkvModel.load / EngineOptions.recordTensors) and hands
 * their bytes on, in order, through `body()` — the data section of the GPU-ready `.safetensors`. `header()` gives the
 * bytes that go before it, once every tensor was recorded. Holds at most `highWaterBytes` at a time: `sink` waits
 * while the consumer of `body()` is behind, so a large model is never held in memory.
 */
export class GpuReadyRecorder {
  private readonly entries: Entry[] = [];
  private readonly names = new Set<string>();
  private readonly transposed: string[] = [];
  private readonly stacks: Record<string, string[]> = {};
  private readonly queue: Uint8Array[] = [];
  private queued = 0;
  private offset = 0;
  private state: 'recording' | 'finished' | 'failed' = 'recording';
  private error: unknown;
  private wakeConsumer: (() => void) | null = null;
  private wakeProducers: (() => void)[] = [];
  private readonly highWater: number;
  private bodyTaken = false;

  constructor(options: RecorderOptions = {}) {
    this.highWater = options.highWaterBytes ?? 64 * 1024 * 1024;
  }

  /** Tensors recorded so far. */
  get tensors(): number {
    return this.entries.length;
  }

  /** Bytes of the data section so far. */
  get bytes(): number {
    return this.offset;
  }

  /** The TensorSink: records one buffer (its bytes are kept, not copied, until `body()` yields them). */
  readonly sink: TensorSink = async (t: UploadedTensor) => {
    if (this.state !== 'recording') throw new InvalidArgumentError(`GpuReadyRecorder: '${t.label}' recorded after the recording ${this.state === 'failed' ? 'failed' : 'ended'}`);
    const name = t.op === 'copy' ? t.label : GPU_READY_PREFIX + t.label;
    if (this.names.has(name)) throw new InvalidArgumentError(`GpuReadyRecorder: '${name}' recorded twice`);
    const want = numel(t.shape) * DTYPE_BYTES[t.dtype];
    if (t.bytes.byteLength !== want) {
      throw new InvalidArgumentError(`GpuReadyRecorder: '${name}' has ${t.bytes.byteLength} bytes for ${t.dtype}[${t.shape}] (want ${want})`);
    }
    this.names.add(name);
    this.entries.push({ name, dtype: t.dtype, shape: [...t.shape], begin: this.offset, end: this.offset + want });
    this.offset += want;
    if (t.op === 'matrixT') this.transposed.push(t.label);
    if (t.op === 'stacked') this.stacks[t.label] = [...(t.parts ?? [])];
    if (want > 0) {
      this.queue.push(t.bytes);
      this.queued += want;
      this.wake();
    }
    while (this.queued > this.highWater && this.state === 'recording') await new Promise<void>((r) => this.wakeProducers.push(r));
    if (this.failed()) throw this.error;
  };

  /** The data section, tensor after tensor. Ends after `finish()`; throws the error given to `fail()`. One reader. */
  async *body(): AsyncGenerator<Uint8Array> {
    if (this.bodyTaken) throw new InvalidArgumentError('GpuReadyRecorder.body() can be read only once');
    this.bodyTaken = true;
    for (;;) {
      if (this.state === 'failed') throw this.error;
      const next = this.queue.shift();
      if (next) {
        this.queued -= next.byteLength;
        if (this.queued <= this.highWater) this.releaseProducers();
        yield next;
        continue;
      }
      if (this.state === 'finished') return;
      await new Promise<void>((r) => (this.wakeConsumer = r));
    }
  }

  /** No more tensors: `body()` ends once it has yielded everything recorded. */
  finish(): void {
    if (this.state !== 'recording') return;
    this.state = 'finished';
    this.wake();
    this.releaseProducers();
  }

  /** The load failed or was abandoned: `body()` and waiting `sink` calls throw `error`. */
  fail(error: unknown): void {
    if (this.state !== 'recording') return;
    this.state = 'failed';
    this.error = error ?? new InvalidArgumentError('GPU-ready recording abandoned');
    this.queue.length = 0;
    this.queued = 0;
    this.wake();
    this.releaseProducers();
  }

  /**
   * The bytes before the data section: 8-byte little-endian header length, then the JSON header (padded with
   * spaces to a multiple of 8) listing every recorded tensor and the metadata. Call after `finish()`.
   */
  header(opts: GpuReadyHeaderOptions): Uint8Array {
    if (this.state !== 'finished') throw new InvalidArgumentError('GpuReadyRecorder.header() needs finish() first');
    if (!this.names.has(GPU_READY_PREFIX + 'emb.weight')) throw new InvalidArgumentError('GpuReadyRecorder: no emb.weight was recorded: not a model load');
    const config: ModelConfig = { ...opts.config, prefix: GPU_READY_PREFIX };
    const json: Record<string, unknown> = {
      __metadata__: {
        format: GPU_READY_FORMAT,
        version: String(GPU_READY_VERSION),
        source: opts.source,
        arch: config.arch,
        config: JSON.stringify(config),
        transposed: JSON.stringify(this.transposed),
        stacked: JSON.stringify(this.stacks),
      },
    };
    for (const e of this.entries) json[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [e.begin, e.end] };
    let text = JSON.stringify(json);
    const enc = new TextEncoder();
    let n = enc.encode(text).byteLength;
    if (n % 8) {
      text += ' '.repeat(8 - (n % 8));
      n = enc.encode(text).byteLength;
    }
    const out = new Uint8Array(8 + n);
    new DataView(out.buffer).setBigUint64(0, BigInt(n), true);
    out.set(enc.encode(text), 8);
    return out;
  }

  private failed(): boolean {
    return this.state === 'failed';
  }

  private wake(): void {
    const w = this.wakeConsumer;
    this.wakeConsumer = null;
    w?.();
  }

  private releaseProducers(): void {
    const ws = this.wakeProducers;
    this.wakeProducers = [];
    for (const w of ws) w();
  }
}

/**
 * Copy the projector's tensors (`proj.*`, read by the engine straight from the checkpoint) unchanged into a
 * recording, so the GPU-ready copy also serves images. Call after the model load recorded its buffers.
 */
export async function recordProjectorTensors(ckpt: Checkpoint, sink: TensorSink): Promise<void> {
  for (const [name, info] of ckpt.tensors) {
    if (!name.startsWith('proj.')) continue;
    const t = await info.read();
    await sink({ label: name, dtype: t.dtype, shape: [...t.shape], bytes: t.bytes, op: 'copy' });
  }
}
