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

/**
 * Step 9 in the chunked form (what shaders/wkv7.wgsl `wkv7_chunked` computes), float64, chunks of L tokens, from state
 * S (mutated): returns y (T, C). Per head and chunk starting from S0, tokens t = 1…n, a = −κ̂, b = κ̂⊙α,
 * g_t = Σ_{u≤t} log w_u (g_0 = 0), E(t, s) = e^{g_t − g_s} (≤ 1 for s ≤ t):
 *   sa_t = S0 (e^{g_{t−1}}⊙a_t) + Σ_{s<t} [A_ts sa_s + B_ts v_s],  A_ts = Σ_j b_s a_t E(t−1, s),  B_ts = Σ_j k_s a_t E(t−1, s)
 *   y_t  = S0 (e^{g_t}⊙r_t)     + Σ_{s≤t} [C_ts sa_s + D_ts v_s],  C_ts = Σ_j b_s r_t E(t, s),     D_ts = Σ_j k_s r_t E(t, s)
 *   S_n[i][j] = S0[i][j] e^{g_n[j]} + Σ_s (sa_s[i] b_s[j] + v_s[i] k_s[j]) E(n, s)[j]
 * (unrolling S_t = S_{t−1} diag(w_t) + sa_t b_tᵀ + v_t k_tᵀ, sa_t = S_{t−1} a_t, y_t = S_t r_t). Written directly from
 * these formulas (not from wkv7Seq), so that agreeing with wkv7Seq checks the derivation.
 */
export function wkv7Chunked(S: Vec, T: number, H: number, N: number, r: Vec, z: Vec, k: Vec, v: Vec, kk: Vec, alpha: Vec, L: number): Vec {
  const C = H * N;
  const y = new Float64Array(T * C);
  const logW = map(z, (x) => -Math.exp(-0.5) * sigmoid(x));
  for (let t0 = 0; t0 < T; t0 += L) {
    const n = Math.min(L, T - t0);
    for (let h = 0; h < H; h++) {
      const ch = (t: number, j: number) => (t0 + t - 1) * C + h * N + j; // token t = 1…n of the chunk
      // g[t][j], t = 0…n
      const g = Array.from({ length: n + 1 }, () => new Float64Array(N));
      for (let t = 1; t <= n; t++) for (let j = 0; j < N; j++) g[t]![j] = g[t - 1]![j]! + logW[ch(t, j)]!;
      const a = (t: number, j: number) => -kk[ch(t, j)]!;
      const b = (t: number, j: number) => kk[ch(t, j)]! * alpha[ch(t, j)]!;
      const E = (t: number, s: number, j: number) => Math.exp(g[t]![j]! - g[s]![j]!);
      const A = (t: number, s: number, x: (s: number, j: number) => number, q: (t: number, j: number) => number, tt: number) => {
        let acc = 0;
        for (let j = 0; j < N; j++) acc += x(s, j) * q(t, j) * E(tt, s, j);
        return acc;
      };
      const kf = (s: number, j: number) => k[ch(s, j)]!;
      const rf = (t: number, j: number) => r[ch(t, j)]!;
      const S0 = (i: number, j: number) => S[(h * N + i) * N + j]!;
      const sa = Array.from({ length: n + 1 }, () => new Float64Array(N)); // sa[t][i]
      const vv = (s: number, i: number) => v[ch(s, i)]!;
      for (let t = 1; t <= n; t++) {
        const As = [], Bs = [], Cs = [], Ds = [];
        for (let s = 1; s <= t; s++) {
          As.push(s < t ? A(t, s, b, a, t - 1) : 0);
          Bs.push(s < t ? A(t, s, kf, a, t - 1) : 0);
          Cs.push(A(t, s, b, rf, t));
          Ds.push(A(t, s, kf, rf, t));
        }
        for (let i = 0; i < N; i++) {
          let s1 = 0;
          let y1 = 0;
          for (let j = 0; j < N; j++) {
            s1 += S0(i, j) * Math.exp(g[t - 1]![j]!) * a(t, j);
            y1 += S0(i, j) * Math.exp(g[t]![j]!) * rf(t, j);
          }
          for (let s = 1; s < t; s++) s1 += As[s - 1]! * sa[s]![i]! + Bs[s - 1]! * vv(s, i);
          sa[t]![i] = s1;
          for (let s = 1; s <= t; s++) y1 += Cs[s - 1]! * sa[s]![i]! + Ds[s - 1]! * vv(s, i);
          y[(t0 + t - 1) * C + h * N + i] = y1;
        }
      }
      for (let i = 0; i < N; i++) {
        for (let j = 0; j < N; j++) {
          let acc = S0(i, j) * Math.exp(g[n]![j]!);
          for (let s = 1; s <= n; s++) acc += (sa[s]![i]! * b(s, j) + vv(s, i) * kf(s, j)) * E(n, s, j);
          S[(h * N + i) * N + j] = acc;
        }
      }
    }
  }
  return y;
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
