/**
 * CPU reference for shaders/matmul.wgsl in float64, from the same 16-bit weights the GPU sees, plus the small
 * test-data helpers shared by the kernel tests (seeded random numbers, 16-bit encoders, a per-element comparison).
 */
import { expect } from 'vitest';
import { f16ToF32, f32ToBf16 } from '../../src/weights/dtype';
import type { Epilogue } from '../../src/kernels/matmul';

// ---------------------------------------------------------------- random data
/** Deterministic PRNG (mulberry32) returning floats in [0, 1). */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n values uniform in [lo, hi) as f32. */
export function randomF32(r: () => number, n: number, lo = -1, hi = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * r();
  return out;
}

/** f32 → IEEE half bits, round to nearest even (normal and subnormal range; no overflow handling needed here). */
export function f32ToF16(x: number): number {
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a === 0) return sign;
  const e = Math.max(Math.floor(Math.log2(a)), -14);
  const q = 2 ** (e - 10);
  let m = a / q;
  const f = Math.floor(m);
  m = m - f > 0.5 || (m - f === 0.5 && f % 2 === 1) ? f + 1 : f; // half to even
  const v = m * q;
  if (v >= 65520) throw new Error(`f32ToF16: ${x} overflows`);
  if (v < 2 ** -14) return sign | Math.round(v / 2 ** -24);
  const ee = Math.floor(Math.log2(v));
  return sign | ((ee + 15) << 10) | Math.round((v / 2 ** ee - 1) * 1024);
}

/** bf16 bits → value. */
export function bf16ToF64(h: number): number {
  const b = new Uint32Array([h << 16]);
  return new Float32Array(b.buffer)[0]!;
}

/** A random [rows, cols] 16-bit matrix: its raw bytes (what uploadMatrix takes) and its exact values. */
export function random16(r: () => number, dtype: 'bf16' | 'f16', rows: number, cols: number, scale = 1): {
  bytes: Uint8Array;
  values: Float64Array;
} {
  const n = rows * cols;
  const bits = new Uint16Array(n);
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const v = (2 * r() - 1) * scale;
    const h = dtype === 'bf16' ? f32ToBf16(v) : f32ToF16(v);
    bits[i] = h;
    values[i] = dtype === 'bf16' ? bf16ToF64(h) : f16ToF32(h);
  }
  return { bytes: new Uint8Array(bits.buffer), values };
}

// ---------------------------------------------------------------- reference
export interface MatmulRefArgs {
  /** (xRowOffset + T, K) f32. */
  x: Float32Array;
  /** (N, K) exact weight values. */
  w: Float64Array;
  T: number;
  N: number;
  K: number;
  xRowOffset?: number;
  epilogue?: Epilogue;
  /** (T, N): y before the op (for 'add' / 'mul_add'). */
  yIn?: Float32Array;
  /** (N). */
  bias?: Float32Array;
  /** (T, N). */
  m?: Float32Array;
}

export interface MatmulRef {
  /** (T, N) epi(z). */
  y: Float64Array;
  /** (T, N) z = x·wᵀ. */
  z: Float64Array;
  /** (T, N) Σ_k |x_k · w_k|: the scale of the f32 rounding error of z. */
  mag: Float64Array;
}

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

/** y = epi(x·wᵀ) in float64. */
export function matmulRef(a: MatmulRefArgs): MatmulRef {
  const { T, N, K, x, w } = a;
  const off = a.xRowOffset ?? 0;
  const epi = a.epilogue ?? 'none';
  const y = new Float64Array(T * N);
  const z = new Float64Array(T * N);
  const mag = new Float64Array(T * N);
  for (let t = 0; t < T; t++) {
    const xb = (off + t) * K;
    for (let n = 0; n < N; n++) {
      const wb = n * K;
      let s = 0;
      let g = 0;
      for (let k = 0; k < K; k++) {
        const p = x[xb + k]! * w[wb + k]!;
        s += p;
        g += Math.abs(p);
      }
      const i = t * N + n;
      z[i] = s;
      mag[i] = g;
      y[i] = applyEpilogue(epi, s, a.yIn?.[i] ?? 0, a.bias?.[n] ?? 0, a.m?.[i] ?? 0);
    }
  }
  return { y, z, mag };
}

export function applyEpilogue(epi: Epilogue, z: number, yIn: number, bias: number, m: number): number {
  switch (epi) {
    case 'none': return z;
    case 'tanh': return Math.tanh(z);
    case 'relu2': return Math.max(z, 0) ** 2;
    case 'sigmoid': return sigmoid(z);
    case 'silu': return z * sigmoid(z);
    case 'add': return yIn + z;
    case 'bias': return z + bias;
    case 'mul_add': return yIn + m * z;
  }
}

/** |d epi / d z| bounded over [z − e, z + e] (how an error e in z propagates). */
export function epilogueSlope(epi: Epilogue, z: number, e: number, m: number): number {
  switch (epi) {
    case 'relu2': return 2 * (Math.max(z, 0) + e);
    case 'sigmoid': return 0.25;
    case 'silu': return 1.1;
    case 'mul_add': return Math.abs(m);
    default: return 1; // none, tanh, add, bias
  }
}

// ---------------------------------------------------------------- comparison
/**
 * Assert |got[i] − want[i]| ≤ tol[i] for all i; on failure name the worst element (largest error/tolerance ratio),
 * both values and the max error. Returns the worst ratio (≤ 1 on success) so tests can log their margin.
 */
export function expectWithin(got: ArrayLike<number>, want: ArrayLike<number>, tol: ArrayLike<number>, what: string): number {
  expect(got.length, `${what}: length`).toBe(want.length);
  let worst = 0;
  let wi = -1;
  let maxAbs = 0;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i]! - want[i]!);
    const ratio = Number.isNaN(d) ? Infinity : d / tol[i]!;
    if (d > maxAbs || Number.isNaN(d)) maxAbs = Number.isNaN(d) ? Infinity : d;
    if (ratio > worst || wi < 0) {
      worst = ratio;
      wi = i;
    }
  }
  expect(
    worst <= 1,
    `${what}: |Δ| exceeds tolerance at index ${wi} (got ${got[wi]}, want ${want[wi]}, tol ${tol[wi]}); max |Δ| = ${maxAbs}, worst ratio ${worst}`,
  ).toBe(true);
  return worst;
}
