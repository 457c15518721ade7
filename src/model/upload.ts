/**
 * Checkpoint tensors → GPU buffers, one tensor at a time (never the whole file in memory).
 * Matrices stay 16-bit (bf16 kept exact, f16 kept as f16, f32 rounded to bf16); small vectors become f32.
 *
 * GPU-ready copies (src/model/gpu-ready.ts): with a `sink`, every buffer uploaded is also handed to it exactly as
 * uploaded (after transposes, stacking and dtype conversion). A checkpoint written from those records carries
 * `__metadata__.format = 'visualrwkv-gpu-ready'`; reading one, `matrixT` and `stacked` take the recorded buffers by
 * key/label as they are (no transpose, no stacking) and nothing needs converting. Bump GPU_READY_VERSION (gpu-ready.ts)
 * whenever what this file uploads for a key changes, so copies made by an older version are refused, not misread.
 */
import type { Gpu } from '../engine/gpu';
import { uploadStorage } from '../engine/buffers';
import { DeviceLimitError, WeightsFormatError, UnsupportedDtypeError } from '../errors';
import { f32ToBf16, numel, toF32, type DType, type HostTensor } from '../weights/dtype';
import type { Checkpoint } from '../weights/checkpoint';
import { uploadMatrix, uploadMatrixBlocks, type GpuMatrix, type MatrixBlock } from '../kernels/types';
import { readGpuReadyLayout, type GpuReadyLayout } from './gpu-ready';

/** One GPU buffer's contents as uploaded by TensorReader. */
export interface UploadedTensor {
  /** The un-prefixed checkpoint key (`blocks.0.att.key.weight`), or the `stacked` label. */
  label: string;
  /** BF16/F16 for matrices and packed tensors, F32 for vectors and stacks (a `copy` keeps the checkpoint's dtype). */
  dtype: DType;
  /** Shape of `bytes`: the Linear layout [out, in] for matrices (transposed ones too), [n, ...part] for stacks. */
  shape: number[];
  /** Exactly the bytes uploaded (do not modify). */
  bytes: Uint8Array;
  /** How the buffer was made from the checkpoint (a GPU-ready copy records it to refuse a mismatching loader);
   *  'copy': a tensor copied unchanged under its full key (the projector's, which the engine reads itself). */
  op: 'vector' | 'matrix' | 'matrixT' | 'packed' | 'stacked' | 'copy';
  /** `stacked`: the keys stacked, in order. */
  parts?: string[];
}

/** Receives every uploaded buffer; loading waits for a returned promise (back-pressure for a slow writer). */
export type TensorSink = (t: UploadedTensor) => void | Promise<void>;

export interface LoadProgress {
  stage: 'weights';
  loaded: number;
  total: number;
}

/** Reads LM tensors by their un-prefixed key (`blocks.0.att.key.weight`), counting bytes for progress. */
export class TensorReader {
  loaded = 0;
  /** Every GPU buffer created through this reader (the model frees them on destroy). */
  readonly buffers: GPUBuffer[] = [];
  /** Bytes the load reads (progress total): the `reads` tensors, or every tensor under the prefix. */
  readonly total: number;
  /** Set when `ckpt` is a GPU-ready copy: which keys were recorded transposed and which labels are stacks. */
  readonly gpuReady: GpuReadyLayout | null;
  /**
   * Largest buffer this reader creates: the device's largest storage binding (and buffer). `matrixBlocks` splits
   * above it; everything else refuses with DeviceLimitError. Lower it only to test the splitting.
   */
  maxBindingBytes: number;
  constructor(
    readonly gpu: Gpu,
    readonly ckpt: Checkpoint,
    readonly prefix: string,
    readonly onProgress?: (p: LoadProgress) => void,
    /** Called between tensors; throw to abort loading (e.g. InterruptedError). */
    readonly checkAbort?: () => void,
    /** Receives every buffer as uploaded (to write a GPU-ready copy). */
    readonly sink?: TensorSink,
    /**
     * The (un-prefixed) tensors the model reads, if not all under the prefix: a released RWKV-7 also carries
     * blocks.0.att.v0/v1/v2, which must not count or the progress would never complete.
     */
    reads?: readonly string[],
  ) {
    let t = 0;
    if (reads) for (const k of reads) t += ckpt.tensors.get(prefix + k)?.byteLength ?? 0;
    else for (const [name, info] of ckpt.tensors) if (name.startsWith(prefix)) t += info.byteLength;
    this.total = t;
    this.gpuReady = readGpuReadyLayout(ckpt);
    this.maxBindingBytes = Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize);
  }

  /**
   * Refuse, before anything is read or uploaded, a checkpoint with a tensor this device cannot bind (except
   * `splittable` keys, which matrixBlocks splits). Sizes as uploaded: 16-bit for tensors of ≥ 2 dimensions
   * (matrices), f32 for vectors.
   */
  checkFits(splittable: readonly string[]): void {
    for (const [name, info] of this.ckpt.tensors) {
      if (!name.startsWith(this.prefix) || splittable.includes(name.slice(this.prefix.length))) continue;
      const dims = info.shape.filter((d) => d > 1).length;
      const bytes = numel(info.shape) * (dims >= 2 ? 2 : 4);
      if (bytes > this.maxBindingBytes) this.tooLarge(name, info.shape, bytes);
    }
  }

  private tooLarge(key: string, shape: readonly number[], bytes: number): never {
    const mib = (n: number) => (n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`);
    throw new DeviceLimitError(
      `${this.ckpt.name}: tensor '${key}' [${shape}] needs a ${mib(bytes)} GPU buffer, but this device's largest storage buffer is ${mib(this.maxBindingBytes)}; ` +
        'use a GPU (or browser) with higher WebGPU limits',
    );
  }

  async read(key: string, shape?: readonly number[]): Promise<HostTensor> {
    this.checkAbort?.();
    const full = this.prefix + key;
    const info = this.ckpt.tensors.get(full);
    if (!info) throw new WeightsFormatError(`${this.ckpt.name}: missing tensor '${full}'`);
    if (shape && (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i]))) {
      throw new WeightsFormatError(`${this.ckpt.name}: tensor '${full}' has shape [${info.shape}], expected [${shape}]`);
    }
    const t = await info.read();
    this.loaded += info.byteLength;
    this.onProgress?.({ stage: 'weights', loaded: this.loaded, total: this.total });
    return t;
  }

  /** A small vector/tensor as an f32 storage buffer (shape [1,1,C] etc. is flattened). */
  async vector(key: string, shape?: readonly number[]): Promise<GPUBuffer> {
    const t = await this.read(key, shape);
    const f = toF32(t);
    const b = this.keep(uploadStorage(this.gpu, key, f));
    await this.record(key, 'F32', t.shape, f, 'vector');
    return b;
  }

  private keep(b: GPUBuffer): GPUBuffer {
    this.buffers.push(b);
    return b;
  }

  private async record(label: string, dtype: UploadedTensor['dtype'], shape: readonly number[], data: ArrayBufferView, op: UploadedTensor['op'], parts?: readonly string[]): Promise<void> {
    if (!this.sink) return;
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    await this.sink({ label, dtype, shape: [...shape], bytes, op, ...(parts ? { parts: [...parts] } : {}) });
  }

  /** A GPU-ready copy made by a loader that read `key` differently cannot be used: refuse it (never misread). */
  private stale(what: string): never {
    throw new WeightsFormatError(
      `${this.ckpt.name}: this GPU-ready copy does not match how this version loads ${what}; delete it and load the original checkpoint again`,
    );
  }

  /** Several tensors concatenated into one f32 buffer (e.g. the five time_maa_* vectors stacked). */
  async stacked(keys: readonly string[], label: string, shape?: readonly number[]): Promise<GPUBuffer> {
    if (this.gpuReady) {
      const recorded = this.gpuReady.stacked.get(label);
      if (!recorded || recorded.length !== keys.length || recorded.some((k, i) => k !== keys[i])) this.stale(`'${label}' (${keys.join(', ')})`);
      const t = await this.read(label);
      if (t.dtype !== 'F32' || (shape && numel(t.shape) !== keys.length * numel(shape))) this.stale(`'${label}' (F32 [${keys.length}, ${shape ?? '…'}])`);
      const b = this.keep(uploadStorage(this.gpu, label, t.bytes));
      await this.record(label, 'F32', t.shape, t.bytes, 'stacked', keys);
      return b;
    }
    const parts: Float32Array[] = [];
    let partShape: number[] = [];
    for (const k of keys) {
      const t = await this.read(k, shape);
      partShape = t.shape;
      parts.push(toF32(t));
    }
    const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    const b = this.keep(uploadStorage(this.gpu, label, out));
    await this.record(label, 'F32', [keys.length, ...partShape], out, 'stacked', keys);
    return b;
  }

  /** A Linear weight [out, in] as a 16-bit GpuMatrix. */
  async matrix(key: string, rows: number, cols: number): Promise<GpuMatrix> {
    if (this.gpuReady?.transposed.has(key)) this.stale(`'${key}' (not transposed)`);
    const t = await this.read(key, [rows, cols]);
    const m = toGpuMatrix(this.gpu, key, t, rows, cols, false);
    this.keep(m.matrix.buffer);
    await this.record(key, m.dtype === 'bf16' ? 'BF16' : 'F16', [rows, cols], m.bytes, 'matrix');
    return m.matrix;
  }

  /**
   * A Linear weight [out, in] as row blocks of at most maxBindingBytes (one block when it fits): the embedding and
   * the head, which outgrow a storage binding first (V × C). Recorded for a GPU-ready copy as one whole matrix.
   */
  async matrixBlocks(key: string, rows: number, cols: number): Promise<MatrixBlock[]> {
    if (this.gpuReady?.transposed.has(key)) this.stale(`'${key}' (not transposed)`);
    const t = await this.read(key, [rows, cols]);
    const s = to16(t, key);
    const blocks = uploadMatrixBlocks(this.gpu, key, rows, cols, s, this.maxBindingBytes);
    for (const b of blocks) this.keep(b.m.buffer);
    await this.record(key, s.dtype === 'bf16' ? 'BF16' : 'F16', [rows, cols], s.bytes, 'matrix');
    return blocks;
  }

  /** A LoRA weight stored [in, out] (x·W), uploaded transposed to the Linear layout [out, in]. */
  async matrixT(key: string, inDim: number, outDim: number): Promise<GpuMatrix> {
    // A GPU-ready copy holds it already transposed: [out, in].
    if (this.gpuReady && !this.gpuReady.transposed.has(key)) this.stale(`'${key}' (transposed)`);
    const t = this.gpuReady ? await this.read(key, [outDim, inDim]) : await this.read(key, [inDim, outDim]);
    const m = toGpuMatrix(this.gpu, key, t, outDim, inDim, !this.gpuReady);
    this.keep(m.matrix.buffer);
    await this.record(key, m.dtype === 'bf16' ? 'BF16' : 'F16', [outDim, inDim], m.bytes, 'matrixT');
    return m.matrix;
  }

  /** Raw 16-bit packed tensor (any shape), e.g. time_maa_w2 [5, R, C]. */
  async packed(key: string, shape: readonly number[]): Promise<{ buffer: GPUBuffer; dtype: 'bf16' | 'f16' }> {
    const t = await this.read(key, shape);
    const s = to16(t, key);
    const b = this.keep(uploadStorage(this.gpu, key, s.bytes));
    await this.record(key, s.dtype === 'bf16' ? 'BF16' : 'F16', shape, s.bytes, 'packed');
    return { buffer: b, dtype: s.dtype };
  }
}

function to16(t: HostTensor, key: string): { dtype: 'bf16' | 'f16'; bytes: Uint8Array } {
  if (t.dtype === 'BF16') return { dtype: 'bf16', bytes: t.bytes };
  if (t.dtype === 'F16') return { dtype: 'f16', bytes: t.bytes };
  if (t.dtype === 'F32' || t.dtype === 'F64') {
    const f = toF32(t);
    const u = new Uint16Array(f.length);
    for (let i = 0; i < f.length; i++) u[i] = f32ToBf16(f[i]!);
    return { dtype: 'bf16', bytes: new Uint8Array(u.buffer) };
  }
  throw new UnsupportedDtypeError(`tensor '${key}' has dtype ${t.dtype}; weights must be BF16, F16 or F32`);
}

/** Upload as a 16-bit matrix; also returns the bytes uploaded (for the sink). */
function toGpuMatrix(gpu: Gpu, key: string, t: HostTensor, rows: number, cols: number, transpose: boolean): { matrix: GpuMatrix; bytes: Uint8Array; dtype: 'bf16' | 'f16' } {
  const s = to16(t, key);
  let bytes = s.bytes;
  if (transpose) {
    // source is [cols, rows] (in, out); target [rows, cols]
    const src = new Uint16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    const dst = new Uint16Array(rows * cols);
    for (let i = 0; i < cols; i++) for (let o = 0; o < rows; o++) dst[o * cols + i] = src[i * rows + o]!;
    bytes = new Uint8Array(dst.buffer);
  }
  return { matrix: uploadMatrix(gpu, key, rows, cols, { dtype: s.dtype, bytes }), bytes, dtype: s.dtype };
}
