/**
 * Float64 references of token shift and RWKV-6's data-dependent lerp (spec §3.3 steps 1–4, §3.4):
 * p_0 = prev, p_t = a_{t−1}, d_t = p_t − a_t.
 */

/** out[m][t] = a_t + d_t ⊙ μ[m]; returns (M, T, C). */
export function tokenShiftRef(a: ArrayLike<number>, prev: ArrayLike<number>, mu: ArrayLike<number>, M: number, T: number, C: number): Float64Array {
  const out = new Float64Array(M * T * C);
  for (let m = 0; m < M; m++) {
    for (let t = 0; t < T; t++) {
      for (let c = 0; c < C; c++) {
        const at = a[t * C + c]!;
        const p = t === 0 ? prev[c]! : a[(t - 1) * C + c]!;
        out[(m * T + t) * C + c] = at + (p - at) * mu[m * C + c]!;
      }
    }
  }
  return out;
}

export interface DdlerpRef {
  /** (5, T, C) x_w, x_k, x_v, x_r, x_g. */
  out: Float64Array;
  /** (5, T, C) |a_t| + |d_t|·(|μ[b]| + Σ_r |h·W2|): the magnitude an f32 kernel's rounding scales with. */
  scale: Float64Array;
}

/**
 * out[b][t] = a_t + d_t ⊙ (μ[b] + h[t, bR:(b+1)R] · W2[b]).
 * h: (T, 5R); w2: (5, R, C) decoded values; mu: (5, C).
 */
export function ddlerpRef(
  a: ArrayLike<number>, prev: ArrayLike<number>, h: ArrayLike<number>, w2: ArrayLike<number>, mu: ArrayLike<number>,
  T: number, C: number, R: number,
): DdlerpRef {
  const out = new Float64Array(5 * T * C);
  const scale = new Float64Array(5 * T * C);
  for (let b = 0; b < 5; b++) {
    for (let t = 0; t < T; t++) {
      for (let c = 0; c < C; c++) {
        let m = 0;
        let mAbs = 0;
        for (let r = 0; r < R; r++) {
          const x = h[t * 5 * R + b * R + r]! * w2[(b * R + r) * C + c]!;
          m += x;
          mAbs += Math.abs(x);
        }
        const at = a[t * C + c]!;
        const d = (t === 0 ? prev[c]! : a[(t - 1) * C + c]!) - at;
        const o = (b * T + t) * C + c;
        out[o] = at + d * (mu[b * C + c]! + m);
        scale[o] = Math.abs(at) + Math.abs(d) * (Math.abs(mu[b * C + c]!) + mAbs);
      }
    }
  }
  return { out, scale };
}
