/** CPU reference for shaders/layer_norm.wgsl: LayerNorm per row in float64 (biased variance), spec §3. */

export interface LayerNormRefArgs {
  /** (rowOffset + T, C) f32. */
  x: Float32Array;
  weight: Float32Array;
  bias: Float32Array;
  T: number;
  C: number;
  eps?: number;
  rowOffset?: number;
}

/** (T, C): row t = LN(x row rowOffset + t). Also returns x̂ = (x − μ)/σ per element (the scale of the f32 error). */
export function layerNormRef(a: LayerNormRefArgs): { y: Float64Array; xhat: Float64Array } {
  const { x, T, C } = a;
  const eps = a.eps ?? 1e-5;
  const off = a.rowOffset ?? 0;
  const y = new Float64Array(T * C);
  const xhat = new Float64Array(T * C);
  for (let t = 0; t < T; t++) {
    const b = (off + t) * C;
    let mean = 0;
    for (let c = 0; c < C; c++) mean += x[b + c]!;
    mean /= C;
    let v = 0;
    for (let c = 0; c < C; c++) v += (x[b + c]! - mean) ** 2;
    const inv = 1 / Math.sqrt(v / C + eps);
    for (let c = 0; c < C; c++) {
      const h = (x[b + c]! - mean) * inv;
      xhat[t * C + c] = h;
      y[t * C + c] = h * a.weight[c]! + a.bias[c]!;
    }
  }
  return { y, xhat };
}
