/**
 * Checkpoint tensors → GPU buffers, one tensor at a time (never the whole file in memory).
 * Matrices stay 16-bit (bf16 kept exact, f16 kept as f16, f32 rounded to bf16); small vectors become f32.
 */
import type { Gpu } from '../engine/gpu';
import { uploadStorage } from '../engine/buffers';
import { WeightsFormatError, UnsupportedDtypeError } from '../errors';
import { f32ToBf16, toF32, type HostTensor } from '../weights/dtype';
import type { Checkpoint } from '../weights/checkpoint';
import { uploadMatrix, type GpuMatrix } from '../kernels/types';

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
  readonly total: number;
  constructor(
    readonly gpu: Gpu,
    readonly ckpt: Checkpoint,
    readonly prefix: string,
    readonly onProgress?: (p: LoadProgress) => void,
    /** Called between tensors; throw to abort loading (e.g. InterruptedError). */
    readonly checkAbort?: () => void,
  ) {
    let t = 0;
    for (const [name, info] of ckpt.tensors) if (name.startsWith(prefix)) t += info.byteLength;
    this.total = t;
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
    return this.keep(uploadStorage(this.gpu, key, toF32(t)));
  }

  private keep(b: GPUBuffer): GPUBuffer {
    this.buffers.push(b);
    return b;
  }

  /** Several tensors concatenated into one f32 buffer (e.g. the five time_maa_* vectors stacked). */
  async stacked(keys: readonly string[], label: string, shape?: readonly number[]): Promise<GPUBuffer> {
    const parts: Float32Array[] = [];
    for (const k of keys) parts.push(toF32(await this.read(k, shape)));
    const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return this.keep(uploadStorage(this.gpu, label, out));
  }

  /** A Linear weight [out, in] as a 16-bit GpuMatrix. */
  async matrix(key: string, rows: number, cols: number): Promise<GpuMatrix> {
    const t = await this.read(key, [rows, cols]);
    const m = toGpuMatrix(this.gpu, key, t, rows, cols, false);
    this.keep(m.buffer);
    return m;
  }

  /** A LoRA weight stored [in, out] (x·W), uploaded transposed to the Linear layout [out, in]. */
  async matrixT(key: string, inDim: number, outDim: number): Promise<GpuMatrix> {
    const t = await this.read(key, [inDim, outDim]);
    const m = toGpuMatrix(this.gpu, key, t, outDim, inDim, true);
    this.keep(m.buffer);
    return m;
  }

  /** Raw 16-bit packed tensor (any shape), e.g. time_maa_w2 [5, R, C]. */
  async packed(key: string, shape: readonly number[]): Promise<{ buffer: GPUBuffer; dtype: 'bf16' | 'f16' }> {
    const t = await this.read(key, shape);
    const s = to16(t, key);
    return { buffer: this.keep(uploadStorage(this.gpu, key, s.bytes)), dtype: s.dtype };
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

function toGpuMatrix(gpu: Gpu, key: string, t: HostTensor, rows: number, cols: number, transpose: boolean): GpuMatrix {
  const s = to16(t, key);
  let bytes = s.bytes;
  if (transpose) {
    // source is [cols, rows] (in, out); target [rows, cols]
    const src = new Uint16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    const dst = new Uint16Array(rows * cols);
    for (let i = 0; i < cols; i++) for (let o = 0; o < rows; o++) dst[o * cols + i] = src[i * rows + o]!;
    bytes = new Uint8Array(dst.buffer);
  }
  return uploadMatrix(gpu, key, rows, cols, { dtype: s.dtype, bytes });
}
