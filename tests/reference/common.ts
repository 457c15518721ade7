/**
 * Float64 math primitives for the CPU reference (spec §3–§4 notation).
 *
 * Vectors are `Float64Array`s; matrices are flat row-major `Float64Array`s whose shape follows from the
 * vector they are applied to:
 * - `matvec(W, x)`: W [out, in] (PyTorch Linear layout), returns W·x  [out];
 * - `vecmat(x, M)`: M [in, out] (LoRA `w1`/`w2` layout),  returns x·M  [out].
 * Every function returns a new array and never mutates its inputs.
 */

export type Vec = Float64Array;

/** LayerNorm epsilon (ln0, ln1, ln2, ln_out, ln_v). */
export const LN_EPS = 1e-5;
/** GroupNorm (`ln_x`) epsilon: 1e-5 · head_size_divisor², divisor 8 (same for v6 and v7). */
export const GN_EPS = 64e-5;

/** LayerNorm / GroupNorm affine parameters. */
export interface NormParams {
  weight: Vec;
  bias: Vec;
}

/** Normalises x[off, off+n) with biased variance and writes w·x̂+b into out (shared by LN and GN). */
function normalizeInto(out: Vec, x: Vec, off: number, n: number, p: NormParams, eps: number): void {
  let mean = 0;
  for (let i = 0; i < n; i++) mean += x[off + i]!;
  mean /= n;
  let v = 0;
  for (let i = 0; i < n; i++) v += (x[off + i]! - mean) ** 2;
  const inv = 1 / Math.sqrt(v / n + eps);
  for (let i = off; i < off + n; i++) out[i] = (x[i]! - mean) * inv * p.weight[i]! + p.bias[i]!;
}

/** LN(x): LayerNorm over the whole vector. */
export function layerNorm(x: Vec, p: NormParams, eps = LN_EPS): Vec {
  const out = new Float64Array(x.length);
  normalizeInto(out, x, 0, x.length, p, eps);
  return out;
}

/** GN_H(x): GroupNorm with `groups` equal groups (one per head), then the per-channel affine. */
export function groupNorm(x: Vec, groups: number, p: NormParams, eps = GN_EPS): Vec {
  const out = new Float64Array(x.length);
  const n = x.length / groups;
  for (let g = 0; g < groups; g++) normalizeInto(out, x, g * n, n, p, eps);
  return out;
}

/** W·x with W [out, in] row-major, in = x.length. */
export function matvec(W: Vec, x: Vec): Vec {
  const n = x.length;
  const rows = W.length / n;
  if (!Number.isInteger(rows)) throw new Error(`matvec: ${W.length} weights do not fit in=${n}`);
  const out = new Float64Array(rows);
  for (let o = 0; o < rows; o++) {
    let s = 0;
    const base = o * n;
    for (let i = 0; i < n; i++) s += W[base + i]! * x[i]!;
    out[o] = s;
  }
  return out;
}

/** x·M with M [in, out] row-major, in = x.length. */
export function vecmat(x: Vec, M: Vec): Vec {
  const n = x.length;
  const cols = M.length / n;
  if (!Number.isInteger(cols)) throw new Error(`vecmat: ${M.length} weights do not fit in=${n}`);
  const out = new Float64Array(cols);
  for (let i = 0; i < n; i++) {
    const xi = x[i]!;
    const base = i * cols;
    for (let o = 0; o < cols; o++) out[o] += xi * M[base + o]!;
  }
  return out;
}

export const sigmoid = (t: number): number => 1 / (1 + Math.exp(-t));
export const silu = (t: number): number => t * sigmoid(t);
export const reluSquared = (t: number): number => (t > 0 ? t * t : 0);

/** Elementwise f over one vector. */
export function map(x: Vec, f: (t: number, i: number) => number): Vec {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = f(x[i]!, i);
  return out;
}

/** Elementwise f over two vectors of equal length. */
export function zip(a: Vec, b: Vec, f: (s: number, t: number) => number): Vec {
  if (a.length !== b.length) throw new Error(`zip: lengths ${a.length} and ${b.length}`);
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = f(a[i]!, b[i]!);
  return out;
}

export const add = (a: Vec, b: Vec): Vec => zip(a, b, (s, t) => s + t);
export const sub = (a: Vec, b: Vec): Vec => zip(a, b, (s, t) => s - t);
export const mul = (a: Vec, b: Vec): Vec => zip(a, b, (s, t) => s * t);

/** Token-shift mix h + d⊙μ. */
export function shiftMix(h: Vec, d: Vec, mu: Vec): Vec {
  const out = new Float64Array(h.length);
  for (let i = 0; i < h.length; i++) out[i] = h[i]! + d[i]! * mu[i]!;
  return out;
}

/** Index of the first maximum (greedy decoding's tie rule). */
export function argmaxFirst(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

/** The largest value minus the second largest: how safe comparing two greedy (argmax) choices is. */
export function top2Gap(x: ArrayLike<number>): number {
  let a = -Infinity;
  let b = -Infinity;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (v > a) [a, b] = [v, a];
    else if (v > b) b = v;
  }
  return a - b;
}

/** The smallest top2Gap over several logit vectors (e.g. every step of a greedy generation). */
export function minTop2Gap(rows: Iterable<ArrayLike<number>>): number {
  let m = Infinity;
  for (const r of rows) m = Math.min(m, top2Gap(r));
  return m;
}

/** log Σ exp(x), stable. */
export function logSumExp(x: ArrayLike<number>): number {
  let m = -Infinity;
  for (let i = 0; i < x.length; i++) m = Math.max(m, x[i]!);
  let s = 0;
  for (let i = 0; i < x.length; i++) s += Math.exp(x[i]! - m);
  return m + Math.log(s);
}
