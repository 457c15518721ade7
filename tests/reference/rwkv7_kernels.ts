/**
 * Float64 references of the RWKV-7 kernel boundaries (rwkv7_prep, wkv7, rwkv7_out), built row by row from the step
 * functions of ./rwkv7.ts (spec §4.3), plus the seeded random inputs the GPU tests share.
 * All (T, C) arrays are flat row-major; C = H·N.
 */
import { groupNorm, map, mul, sigmoid, zip, type Vec } from './common';
import { bonus7, normalizePerHead, wkv7 } from './rwkv7';

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

/** n uniform values in [lo, hi), rounded to f32 (so GPU and reference see the same numbers). */
export function uniform(r: () => number, n: number, lo = -1, hi = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * r();
  return out;
}

export const f64 = (x: ArrayLike<number>): Vec => Float64Array.from(x);

/** Row t of a flat (T, C) array, as float64. */
export function row(x: ArrayLike<number>, t: number, C: number): Vec {
  const out = new Float64Array(C);
  for (let c = 0; c < C; c++) out[c] = x[t * C + c]!;
  return out;
}

/** Concatenate rows into one flat float64 array. */
export function stack(rows: Vec[]): Vec {
  const C = rows[0]?.length ?? 0;
  const out = new Float64Array(rows.length * C);
  rows.forEach((r, t) => out.set(r, t * C));
  return out;
}

/** Step 3's decay from its logit: w = exp(−e^{−1/2}·σ(z)). */
export function decayFromLogit(z: Vec): Vec {
  return map(z, (t) => Math.exp(-Math.exp(-0.5) * sigmoid(t)));
}

export interface Prep7 {
  /** k' = k⊙(1 + (α − 1)⊙k_a). */
  k: Vec;
  /** κ̂ = per-head L2-normalised k⊙k_k. */
  kk: Vec;
  /** α = σ(aLogit). */
  alpha: Vec;
  /** v after the value residual (unchanged on layer 0). */
  v: Vec;
  /** layer 0: v; else the given vFirst. */
  vFirst: Vec;
}

/** Steps 4, 6, 7, 8 for one row (vGate undefined = layer 0). */
export function prep7(k: Vec, aLogit: Vec, v: Vec, vFirst: Vec, vGate: Vec | undefined, kScale: Vec, ka: Vec, H: number): Prep7 {
  const alpha = map(aLogit, sigmoid);
  const kk = normalizePerHead(mul(k, kScale), H);
  const kNew = zip(k, zip(alpha, ka, (a, b) => 1 + (a - 1) * b), (a, b) => a * b);
  if (!vGate) return { k: kNew, kk, alpha, v, vFirst: v };
  const vNew = map(v, (x, c) => x + (vFirst[c]! - x) * sigmoid(vGate[c]!));
  return { k: kNew, kk, alpha, v: vNew, vFirst };
}

/** Step 9 over T rows from state S (mutated): returns y (T, C). w holds decay logits z. */
export function wkv7Seq(S: Vec, T: number, H: number, N: number, r: Vec, z: Vec, k: Vec, v: Vec, kk: Vec, alpha: Vec): Vec {
  const C = H * N;
  const ys: Vec[] = [];
  for (let t = 0; t < T; t++) {
    const g = (x: Vec) => row(x, t, C);
    ys.push(wkv7(S, H, N, g(r), decayFromLogit(g(z)), g(k), g(v), g(kk), g(alpha)));
  }
  return stack(ys);
}

/** Steps 10–11 and ⊙g for one row: (GN_H(y)·weight + bias + bonus·v) ⊙ g. */
export function out7(y: Vec, r: Vec, k: Vec, v: Vec, rk: Vec, g: Vec, weight: Vec, bias: Vec, H: number, eps?: number): Vec {
  return mul(bonus7(groupNorm(y, H, { weight, bias }, eps), H, r, k, rk, v), g);
}

/** max |x| (for tolerances relative to a tensor's scale). */
export function maxAbs(x: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]!));
  return m;
}
