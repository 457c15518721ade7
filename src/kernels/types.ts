/**
 * Types shared by the kernel constructors, and the upload helper for 16-bit matrices.
 *
 * Matrices keep the PyTorch `Linear` layout [rows = out, cols = in], row-major, 16-bit values packed two per u32
 * (element 2i in the low half). Raw little-endian bf16/f16 checkpoint bytes already are this format.
 */
import type { Gpu } from '../engine/gpu';
import { uploadStorage } from '../engine/buffers';
import { ShapeError } from '../errors';
import { f32ToBf16 } from '../weights/dtype';

/** A matrix on the GPU in the PyTorch Linear layout [rows=out, cols=in], row-major, 16-bit values packed 2 per u32. */
export interface GpuMatrix {
  buffer: GPUBuffer;
  rows: number;
  cols: number;
  dtype: 'bf16' | 'f16';
  label: string;
}

/** Raw little-endian 16-bit matrix bytes (rows·cols·2 bytes). */
export interface Raw16 {
  dtype: 'bf16' | 'f16';
  bytes: Uint8Array;
}

/**
 * Upload a [rows, cols] matrix. `data` is either raw bf16/f16 bytes (uploaded as is) or f32 values (converted to bf16,
 * round to nearest even). `cols` must be even so every row starts on a u32 boundary.
 *
 * @example
 * const head = uploadMatrix(gpu, 'head.weight', V, C, { dtype: 'bf16', bytes: tensor.bytes });
 */
export function uploadMatrix(
  gpu: Gpu,
  label: string,
  rows: number,
  cols: number,
  data: Raw16 | Float32Array,
): GpuMatrix {
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 1 || cols < 2 || cols % 2 !== 0) {
    throw new ShapeError(`${label}: matrix [${rows}, ${cols}] must have rows ≥ 1 and an even cols ≥ 2`);
  }
  const n = rows * cols;
  let bytes: Uint8Array;
  let dtype: 'bf16' | 'f16';
  if (data instanceof Float32Array) {
    if (data.length !== n) throw new ShapeError(`${label}: ${data.length} f32 values for a [${rows}, ${cols}] matrix`);
    const h = new Uint16Array(n);
    for (let i = 0; i < n; i++) h[i] = f32ToBf16(data[i]!);
    bytes = new Uint8Array(h.buffer);
    dtype = 'bf16';
  } else {
    if (data.bytes.byteLength !== n * 2) {
      throw new ShapeError(`${label}: ${data.bytes.byteLength} bytes for a [${rows}, ${cols}] ${data.dtype} matrix (want ${n * 2})`);
    }
    bytes = data.bytes;
    dtype = data.dtype;
  }
  return { buffer: uploadStorage(gpu, label, bytes), rows, cols, dtype, label };
}

/** Rows [row0, row0 + m.rows) of a matrix split into row blocks (see uploadMatrixBlocks). */
export interface MatrixBlock {
  m: GpuMatrix;
  row0: number;
}

/**
 * Upload a [rows, cols] 16-bit matrix as row blocks of at most `maxBytes` each (one block when it fits): for the
 * embedding and the head of large vocabularies on devices whose largest storage binding is smaller than them.
 *
 * @example
 * const head = uploadMatrixBlocks(gpu, 'head.weight', V, C, { dtype: 'bf16', bytes }, gpu.limits.maxStorageBufferBindingSize);
 */
export function uploadMatrixBlocks(gpu: Gpu, label: string, rows: number, cols: number, data: Raw16, maxBytes: number): MatrixBlock[] {
  const rowBytes = cols * 2;
  // Whole rows per block, a multiple of 64 where possible (the vec matmul's row groups), at least one.
  let per = Math.floor(maxBytes / rowBytes);
  if (per < 1) throw new ShapeError(`${label}: one row of ${rowBytes} bytes exceeds the block size ${maxBytes}`);
  if (per >= rows) return [{ m: uploadMatrix(gpu, label, rows, cols, data), row0: 0 }];
  if (per > 64) per -= per % 64;
  const out: MatrixBlock[] = [];
  for (let r0 = 0; r0 < rows; r0 += per) {
    const n = Math.min(per, rows - r0);
    const bytes = data.bytes.subarray(r0 * rowBytes, (r0 + n) * rowBytes);
    out.push({ m: uploadMatrix(gpu, `${label}[${r0}:${r0 + n}]`, n, cols, { dtype: data.dtype, bytes }), row0: r0 });
  }
  return out;
}

/** Workgroup grid for `n` workgroups: (x, y) with x, y ≤ `maxPerDim`; the shader folds it back as x + y·num_x. */
export function grid2d(n: number, maxPerDim: number): [number, number] {
  if (n <= maxPerDim) return [n, 1];
  const y = Math.ceil(n / maxPerDim);
  if (y > maxPerDim) throw new ShapeError(`${n} workgroups do not fit a ${maxPerDim}² grid`);
  return [Math.ceil(n / y), y];
}

/** Throw ShapeError unless `buffer` holds at least `bytes` bytes. */
export function needBytes(buffer: GPUBuffer, bytes: number, what: string): void {
  if (buffer.size < bytes) throw new ShapeError(`${what}: buffer '${buffer.label}' has ${buffer.size} bytes, needs ≥ ${bytes}`);
}

/** Throw ShapeError unless `v` is an integer ≥ `min`. */
export function needInt(v: number, min: number, what: string): void {
  if (!Number.isInteger(v) || v < min) throw new ShapeError(`${what} must be an integer ≥ ${min}, got ${v}`);
}
