/**
 * RWKV-7 ("Goose", x070) block for one row, in float64, following spec §4 / MANIFEST §3 step by step.
 * Sequence mode is the same block applied row after row in processing order; the driver is `refForward`
 * in ./model.ts. `v_first` is per position (layer 0's v of the same row), carried in a `VFirstSlot`.
 */
import {
  add, groupNorm, layerNorm, map, matvec, mul, reluSquared, shiftMix, sigmoid, sub, vecmat, zip, type Vec,
} from './common';
import type { RefLayerState, RefModel } from './weights';

/** Holds one position's v_first: written by layer 0, read by layers ≥ 1 (never part of the state). */
export interface VFirstSlot {
  v?: Vec;
}

/** exp(−1/2): the decay exponent's scale (ChatRWKV rounds it to 0.606531). */
const DECAY_SCALE = Math.exp(-0.5);
/** L2-normalisation floor of κ̂. */
const KK_EPS = 1e-12;

/** Step 3: decay = exp(−e^{−1/2}·σ(w0 + tanh(x_w·w1)·w2)). */
export function decay7(m: RefModel, i: number, xw: Vec): Vec {
  const p = (k: string): Vec => m.w(`blocks.${i}.att.${k}`);
  const z = add(p('w0'), vecmat(map(vecmat(xw, p('w1')), Math.tanh), p('w2')));
  return map(z, (t) => Math.exp(-DECAY_SCALE * sigmoid(t)));
}

/** σ(b0 + (x·b1)·b2): the LoRA gates of α (`a`) and of the value residual (`v`). */
function sigmoidLora(m: RefModel, i: number, name: 'a' | 'v', x: Vec): Vec {
  const p = (k: string): Vec => m.w(`blocks.${i}.att.${k}`);
  return map(add(p(`${name}0`), vecmat(vecmat(x, p(`${name}1`)), p(`${name}2`))), sigmoid);
}

/** Step 6: κ̂ = per-head L2 normalisation of κ, dividing by max(‖κ_h‖, 1e-12). */
export function normalizePerHead(kappa: Vec, H: number): Vec {
  const N = kappa.length / H;
  const out = new Float64Array(kappa.length);
  for (let h = 0; h < H; h++) {
    let ss = 0;
    for (let j = 0; j < N; j++) ss += kappa[h * N + j]! ** 2;
    const inv = 1 / Math.max(Math.sqrt(ss), KK_EPS);
    for (let j = 0; j < N; j++) out[h * N + j] = kappa[h * N + j]! * inv;
  }
  return out;
}

/**
 * Step 9, one row, per head with S[h][value i][key j] (mutated):
 *   sa_i = Σ_j S[i][j]·(−κ̂_j);  S[i][j] ← S[i][j]·w_j + sa_i·κ̂_j·α_j + v_i·k'_j;  y_i = Σ_j S[i][j]·r_j (new S).
 */
export function wkv7(S: Vec, H: number, N: number, r: Vec, w: Vec, k: Vec, v: Vec, kk: Vec, alpha: Vec): Vec {
  const y = new Float64Array(H * N);
  for (let h = 0; h < H; h++) {
    for (let i = 0; i < N; i++) {
      const row = (h * N + i) * N;
      let sa = 0;
      for (let j = 0; j < N; j++) sa -= S[row + j]! * kk[h * N + j]!;
      const vi = v[h * N + i]!;
      let yi = 0;
      for (let j = 0; j < N; j++) {
        const c = h * N + j;
        const sij = S[row + j]! * w[c]! + sa * kk[c]! * alpha[c]! + vi * k[c]!;
        S[row + j] = sij;
        yi += sij * r[c]!;
      }
      y[h * N + i] = yi;
    }
  }
  return y;
}

/** Step 11: per head, y_h += (Σ_j r_h[j]·k'_h[j]·r_k[h][j])·v_h. */
export function bonus7(y: Vec, H: number, r: Vec, k: Vec, rk: Vec, v: Vec): Vec {
  const N = y.length / H;
  const out = y.slice();
  for (let h = 0; h < H; h++) {
    let s = 0;
    for (let j = 0; j < N; j++) s += r[h * N + j]! * k[h * N + j]! * rk[h * N + j]!;
    for (let j = 0; j < N; j++) out[h * N + j] += s * v[h * N + j]!;
  }
  return out;
}

/** TimeMix (spec §4.3 steps 1–12) for h = LN_ln1(x); updates s.att_x, s.wkv and (layer 0) slot.v. */
export function timeMix7(m: RefModel, i: number, s: RefLayerState, h: Vec, slot: VFirstSlot): Vec {
  const { H, N } = m.config;
  const p = (k: string): Vec => m.w(`blocks.${i}.att.${k}`);
  const d = sub(s.att_x, h);
  const [xr, xw, xk, xv, xa, xg] = (['r', 'w', 'k', 'v', 'a', 'g'] as const).map((b) => shiftMix(h, d, p(`x_${b}`)));
  const r = matvec(p('receptance.weight'), xr!);
  const kRaw = matvec(p('key.weight'), xk!);
  let v = matvec(p('value.weight'), xv!);
  const w = decay7(m, i, xw!);
  const alpha = sigmoidLora(m, i, 'a', xa!);
  const g = vecmat(map(vecmat(xg!, p('g1')), sigmoid), p('g2'));
  const kk = normalizePerHead(mul(kRaw, p('k_k')), H);
  const k = zip(kRaw, zip(alpha, p('k_a'), (a, ka) => 1 + (a - 1) * ka), (a, b) => a * b);
  if (i === 0) slot.v = v; // layer 0: v_first = v (any blocks.0.att.v0/v1/v2 are ignored)
  else {
    if (!slot.v) throw new Error(`layer ${i}: v_first of this position was not set by layer 0`);
    const vf = slot.v;
    const gate = sigmoidLora(m, i, 'v', xv!);
    v = map(v, (vj, j) => vj + (vf[j]! - vj) * gate[j]!);
  }
  const y = wkv7(s.wkv, H, N, r, w, k, v, kk, alpha);
  s.att_x = h;
  const yn = bonus7(groupNorm(y, H, m.norm(`blocks.${i}.att.ln_x`)), H, r, k, p('r_k'), v);
  return matvec(p('output.weight'), mul(yn, g));
}

/** ChannelMix: out = W_v·relu(W_k·(h + d⊙x_k))²; updates s.ffn_x. */
export function channelMix7(m: RefModel, i: number, s: RefLayerState, h: Vec): Vec {
  const p = (k: string): Vec => m.w(`blocks.${i}.ffn.${k}`);
  const xk = shiftMix(h, sub(s.ffn_x, h), p('x_k'));
  s.ffn_x = h;
  return matvec(p('value.weight'), map(matvec(p('key.weight'), xk), reluSquared));
}

/** Block i on one residual row x (ln0 already applied by the driver). */
export function block7(m: RefModel, i: number, s: RefLayerState, x: Vec, slot: VFirstSlot): Vec {
  x = add(x, timeMix7(m, i, s, layerNorm(x, m.norm(`blocks.${i}.ln1`)), slot));
  return add(x, channelMix7(m, i, s, layerNorm(x, m.norm(`blocks.${i}.ln2`))));
}
