/** Float64 reference of GN_H with the ln_x affine and an optional gate (spec §3.3 step 8, §4.3 step 10). */

export interface GroupNormRefArgs {
  /** (T, C) */
  y: ArrayLike<number>;
  /** (T, C) gate, or undefined for no gate. */
  g?: ArrayLike<number>;
  /** (C) */
  weight: ArrayLike<number>;
  bias: ArrayLike<number>;
  T: number;
  H: number;
  N: number;
  eps: number;
}

/**
 * Returns out (T, C) and, per element, the magnitude f32 rounding scales with:
 * (|x̂·weight| + |bias| + |μ|/sqrt(σ²+eps)·|weight|)·|g| — the last term because y − μ can only be formed to a few
 * ulps of |μ|, which the normalisation then amplifies.
 */
export function groupNormRef(a: GroupNormRefArgs): { out: Float64Array; scale: Float64Array } {
  const { T, H, N } = a;
  const C = H * N;
  const out = new Float64Array(T * C);
  const scale = new Float64Array(T * C);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < H; h++) {
      const o = t * C + h * N;
      let mean = 0;
      for (let i = 0; i < N; i++) mean += a.y[o + i]!;
      mean /= N;
      let v = 0;
      for (let i = 0; i < N; i++) v += (a.y[o + i]! - mean) ** 2;
      const inv = 1 / Math.sqrt(v / N + a.eps);
      for (let i = 0; i < N; i++) {
        const c = h * N + i;
        const xw = (a.y[o + i]! - mean) * inv * a.weight[c]!;
        const gate = a.g ? a.g[o + i]! : 1;
        out[o + i] = (xw + a.bias[c]!) * gate;
        scale[o + i] = (Math.abs(xw) + Math.abs(a.bias[c]!) + Math.abs(mean) * inv * Math.abs(a.weight[c]!)) * Math.abs(gate);
      }
    }
  }
  return { out, scale };
}
