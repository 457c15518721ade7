/**
 * Float64 reference of shaders/wkv6_fused.wgsl, composed from the per-step references: the decay LoRA
 * up-projection δ = time_decay + dh·D2ᵀ, the WKV recurrence (./wkv6.ts) and the gated GroupNorm (./group_norm.ts).
 */
import { wkv6Ref } from './wkv6';
import { groupNormRef } from './group_norm';

export interface Wkv6FusedRefArgs {
  /** (4·T·C + T·Rd): r, k, v, g (T, C) each, then dh (T, Rd). */
  rkvgd: Float32Array;
  /** (C, Rd) exact 16-bit values of time_decay_w2 in the Linear layout. */
  d2: Float64Array;
  timeDecay: Float32Array;
  u: Float32Array;
  lnWeight: Float32Array;
  lnBias: Float32Array;
  /** (H, N, N) initial state; not modified. */
  state: Float32Array;
  T: number;
  H: number;
  N: number;
  Rd: number;
  eps: number;
}

export interface Wkv6FusedRef {
  /** (T, C) gated GroupNorm output. */
  o: Float64Array;
  /** (T, C) WKV output before the GroupNorm. */
  y: Float64Array;
  /** (H, N, N) final state. */
  state: Float64Array;
  /** (T, C) decay logits. */
  delta: Float64Array;
  /** (T, C) |∂o/∂y| bound per element: |g·ln_w| / sqrt(σ² + eps) · (2 + |x̂|) (an error E in every y of the head moves o by ≤ this · E). */
  gnGain: Float64Array;
  /** (T, C) the f32 rounding scale of the GroupNorm itself (groupNormRef's scale). */
  gnScale: Float64Array;
}

export function wkv6FusedRef(a: Wkv6FusedRefArgs): Wkv6FusedRef {
  const { T, H, N, Rd } = a;
  const C = H * N;
  const part = (b: number) => a.rkvgd.subarray(b * T * C, (b + 1) * T * C);
  const [r, k, v, g] = [0, 1, 2, 3].map(part) as [Float32Array, Float32Array, Float32Array, Float32Array];
  const dh = a.rkvgd.subarray(4 * T * C, 4 * T * C + T * Rd);
  const delta = new Float64Array(T * C);
  for (let t = 0; t < T; t++) {
    for (let c = 0; c < C; c++) {
      let s = a.timeDecay[c]!;
      for (let q = 0; q < Rd; q++) s += dh[t * Rd + q]! * a.d2[c * Rd + q]!;
      delta[t * C + c] = s;
    }
  }
  const w = wkv6Ref({ r, k, v, decay: delta, u: a.u, state: a.state, T, H, N });
  const gn = groupNormRef({ y: w.y, g, weight: a.lnWeight, bias: a.lnBias, T, H, N, eps: a.eps });
  const gnGain = new Float64Array(T * C);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < H; h++) {
      const o = t * C + h * N;
      let mean = 0;
      for (let i = 0; i < N; i++) mean += w.y[o + i]!;
      mean /= N;
      let vv = 0;
      for (let i = 0; i < N; i++) vv += (w.y[o + i]! - mean) ** 2;
      const inv = 1 / Math.sqrt(vv / N + a.eps);
      for (let i = 0; i < N; i++) {
        const xhat = (w.y[o + i]! - mean) * inv;
        gnGain[o + i] = Math.abs(g[o + i]! * a.lnWeight[h * N + i]!) * inv * (2 + Math.abs(xhat));
      }
    }
  }
  return { o: gn.out, y: w.y, state: w.state, delta, gnGain, gnScale: gn.scale };
}
