/** Tensor dtypes and conversions (CPU side). */
import { UnsupportedDtypeError } from '../errors';

/** Dtype names as in safetensors. */
export type DType = 'BF16' | 'F16' | 'F32' | 'F64' | 'I32' | 'I64' | 'I16' | 'I8' | 'U8' | 'BOOL';

export const DTYPE_BYTES: Record<DType, number> = {
  BF16: 2, F16: 2, F32: 4, F64: 8, I32: 4, I64: 8, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

/** A tensor held in CPU memory as raw little-endian bytes. */
export interface HostTensor {
  dtype: DType;
  shape: number[];
  bytes: Uint8Array;
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

/** IEEE half → f32. */
export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** f32 → bf16 bits, round to nearest even. */
export function f32ToBf16(x: number): number {
  f32buf[0] = x;
  const u = u32buf[0]!;
  if ((u & 0x7f800000) === 0x7f800000 && u & 0x7fffff) return (u >>> 16) | 0x40; // NaN stays NaN
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Any float/int tensor → Float32Array (copying). */
export function toF32(t: HostTensor): Float32Array {
  const n = numel(t.shape);
  const b = t.bytes;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (b.byteLength < n * DTYPE_BYTES[t.dtype]) throw new UnsupportedDtypeError(`tensor data too short for ${t.dtype}[${t.shape}]`);
  const out = new Float32Array(n);
  switch (t.dtype) {
    case 'F32':
      for (let i = 0; i < n; i++) out[i] = dv.getFloat32(i * 4, true);
      return out;
    case 'BF16':
      for (let i = 0; i < n; i++) {
        u32buf[0] = dv.getUint16(i * 2, true) << 16;
        out[i] = f32buf[0]!;
      }
      return out;
    case 'F16':
      for (let i = 0; i < n; i++) out[i] = f16ToF32(dv.getUint16(i * 2, true));
      return out;
    case 'F64':
      for (let i = 0; i < n; i++) out[i] = dv.getFloat64(i * 8, true);
      return out;
    case 'I32':
      for (let i = 0; i < n; i++) out[i] = dv.getInt32(i * 4, true);
      return out;
    default:
      throw new UnsupportedDtypeError(`cannot convert ${t.dtype} to f32`);
  }
}

/** Int tensor → Int32Array. */
export function toI32(t: HostTensor): Int32Array {
  const n = numel(t.shape);
  const dv = new DataView(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength);
  const out = new Int32Array(n);
  if (t.dtype === 'I32') for (let i = 0; i < n; i++) out[i] = dv.getInt32(i * 4, true);
  else if (t.dtype === 'I64') for (let i = 0; i < n; i++) out[i] = Number(dv.getBigInt64(i * 8, true));
  else throw new UnsupportedDtypeError(`cannot convert ${t.dtype} to i32`);
  return out;
}
