/**
 * Float64 reference of shaders/ln_mix.wgsl: LayerNorm (tests/reference/layer_norm.ts), token shift with p_0 = prev,
 * p_t = a_{t−1} (tests/reference/token_shift.ts) and the optional LoRA down-projection h = tanh(z·W1ᵀ).
 * Also returns per-element error scales for the f32 kernel.
 */
import { layerNormRef } from './layer_norm';
import { tokenShiftRef } from './token_shift';

/** Per element: LN_REL scale of the LN output error (|weight|·(|x̂| + 1) + |bias|), as tests/gpu/layer_norm. */
function lnScale(xhat: Float64Array, weight: Float32Array, bias: Float32Array, C: number): Float64Array {
  return xhat.map((h, i) => Math.abs(weight[i % C]!) * (Math.abs(h) + 1) + Math.abs(bias[i % C]!));
}

export interface LnMixRef {
  /** (T, C) LN output. */
  a: Float64Array;
  /** (T, C) error scale of a (multiply by the kernel's relative LN tolerance). */
  aScale: Float64Array;
  /** (M, T, C) mixes (M = 1 for the LoRA variant: z). */
  out: Float64Array;
  /** (M, T, C) error scale of out in units of the LN tolerance: sa·|1 − μ| + sp·|μ| (sa, sp: scales of a_t, p_t). */
  outScale: Float64Array;
  /** (M, T, C) |a| + |d|·|μ|: the magnitude the mix's own rounding scales with. */
  outMag: Float64Array;
}

export function lnMixRef(
  x: Float32Array, prev: Float32Array, weight: Float32Array, bias: Float32Array, mu: Float32Array,
  M: number, T: number, C: number, eps = 1e-5,
): LnMixRef {
  const ln = layerNormRef({ x, weight, bias, T, C, eps });
  const aScale = lnScale(ln.xhat, weight, bias, C);
  const out = tokenShiftRef(ln.y, prev, mu, M, T, C);
  const outScale = new Float64Array(M * T * C);
  const outMag = new Float64Array(M * T * C);
  for (let m = 0; m < M; m++) {
    for (let t = 0; t < T; t++) {
      for (let c = 0; c < C; c++) {
        const i = t * C + c;
        const mv = mu[m * C + c]!;
        const sp = t === 0 ? 0 : aScale[i - C]!;
        const pv = t === 0 ? prev[c]! : ln.y[i - C]!;
        outScale[m * T * C + i] = aScale[i]! * Math.abs(1 - mv) + sp * Math.abs(mv);
        outMag[m * T * C + i] = Math.abs(ln.y[i]!) + Math.abs(pv - ln.y[i]!) * Math.abs(mv);
      }
    }
  }
  return { a: ln.y, aScale, out, outScale, outMag };
}

export interface LnMixLoraRef extends LnMixRef {
  /** (T, NL) tanh(z·W1ᵀ). */
  h: Float64Array;
  /** (T, NL) Σ_c |z_c·W1[n, c]|. */
  hMag: Float64Array;
  /** (T, NL) Σ_c |W1[n, c]|·outScale_c and Σ_c |W1[n, c]|·outMag_c: how z's errors reach h. */
  hScale: Float64Array;
  hMixMag: Float64Array;
}

/** w1: (NL, C) decoded 16-bit values in the Linear layout. */
export function lnMixLoraRef(
  x: Float32Array, prev: Float32Array, weight: Float32Array, bias: Float32Array, mu: Float32Array, w1: Float64Array,
  NL: number, T: number, C: number, eps = 1e-5,
): LnMixLoraRef {
  const base = lnMixRef(x, prev, weight, bias, mu, 1, T, C, eps);
  const h = new Float64Array(T * NL);
  const hMag = new Float64Array(T * NL);
  const hScale = new Float64Array(T * NL);
  const hMixMag = new Float64Array(T * NL);
  for (let t = 0; t < T; t++) {
    for (let n = 0; n < NL; n++) {
      let s = 0, g = 0, e = 0, mm = 0;
      for (let c = 0; c < C; c++) {
        const w = w1[n * C + c]!;
        const z = base.out[t * C + c]!;
        s += z * w;
        g += Math.abs(z * w);
        e += Math.abs(w) * base.outScale[t * C + c]!;
        mm += Math.abs(w) * base.outMag[t * C + c]!;
      }
      h[t * NL + n] = Math.tanh(s);
      hMag[t * NL + n] = g;
      hScale[t * NL + n] = e;
      hMixMag[t * NL + n] = mm;
    }
  }
  return { ...base, h, hMag, hScale, hMixMag };
}
