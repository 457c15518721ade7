/**
 * RWKV-6 ("Finch", x060) block for one row, in float64, following spec §3 / MANIFEST §3 step by step.
 * Sequence mode is the same block applied row after row in processing order (the recurrence is exact, so RNN
 * and sequence mode coincide); the driver is `refForward` in ./model.ts.
 *
 * Per-layer tensor names are the checkpoint's (`blocks.i.att.time_maa_w1`, ...), looked up through `m.w`.
 */
import {
  add, groupNorm, layerNorm, matvec, mul, reluSquared, shiftMix, sigmoid, silu, sub, vecmat, map, zip,
  type Vec,
} from './common';
import type { RefLayerState, RefModel } from './weights';

/** The five data-dependent token-shift mixes of step 2–3, in checkpoint order w, k, v, r, g. */
interface Mixed6 {
  w: Vec;
  k: Vec;
  v: Vec;
  r: Vec;
  g: Vec;
}

const MAA_ORDER = ['w', 'k', 'v', 'r', 'g'] as const;

/** Steps 1–3: d = h_p − h; m = tanh((h + d⊙maa_x)·maa_w1) split in 5 groups; h_b = h + d⊙(maa_b + m_b·maa_w2[b]). */
export function ddlerp6(m: RefModel, i: number, h: Vec, hPrev: Vec): Mixed6 {
  const p = (k: string): Vec => m.w(`blocks.${i}.att.${k}`);
  const C = h.length;
  const d = sub(hPrev, h);
  const lora = map(vecmat(shiftMix(h, d, p('time_maa_x')), p('time_maa_w1')), Math.tanh); // [5*Dm]
  const Dm = lora.length / 5;
  const w2 = p('time_maa_w2'); // [5, Dm, C]
  const out = {} as Mixed6;
  MAA_ORDER.forEach((b, j) => {
    const mb = vecmat(lora.subarray(j * Dm, (j + 1) * Dm), w2.subarray(j * Dm * C, (j + 1) * Dm * C));
    out[b] = shiftMix(h, d, add(p(`time_maa_${b}`), mb));
  });
  return out;
}

/** Step 5: decay = exp(−exp(time_decay + tanh(h_w·decay_w1)·decay_w2)) ∈ (0, 1). */
export function decay6(m: RefModel, i: number, hw: Vec): Vec {
  const p = (k: string): Vec => m.w(`blocks.${i}.att.${k}`);
  const logw = add(p('time_decay'), vecmat(map(vecmat(hw, p('time_decay_w1')), Math.tanh), p('time_decay_w2')));
  return map(logw, (t) => Math.exp(-Math.exp(t)));
}

/**
 * Step 6, one row, per head with u = time_faaaa and S[h][key j][value i] (mutated):
 *   y[i] = Σ_j r[j]·(u[j]·k[j]·v[i] + S[j][i]);   S[j][i] ← decay[j]·S[j][i] + k[j]·v[i].
 */
export function wkv6(S: Vec, H: number, N: number, r: Vec, k: Vec, v: Vec, decay: Vec, u: Vec): Vec {
  const y = new Float64Array(H * N);
  for (let h = 0; h < H; h++) {
    const s0 = h * N * N;
    for (let j = 0; j < N; j++) {
      const c = h * N + j;
      const rj = r[c]!, kj = k[c]!, uk = u[c]! * kj, wj = decay[c]!;
      for (let i = 0; i < N; i++) {
        const vi = v[h * N + i]!;
        const idx = s0 + j * N + i;
        y[h * N + i] += rj * (uk * vi + S[idx]!);
        S[idx] = wj * S[idx]! + kj * vi;
      }
    }
  }
  return y;
}

/** TimeMix (steps 1–7) for h = LN_ln1(x); updates s.att_x and s.wkv. */
export function timeMix6(m: RefModel, i: number, s: RefLayerState, h: Vec): Vec {
  const { H, N } = m.config;
  const p = (k: string): Vec => m.w(`blocks.${i}.att.${k}`);
  const x = ddlerp6(m, i, h, s.att_x);
  const r = matvec(p('receptance.weight'), x.r);
  const k = matvec(p('key.weight'), x.k);
  const v = matvec(p('value.weight'), x.v);
  const g = map(matvec(p('gate.weight'), x.g), silu);
  const decay = decay6(m, i, x.w);
  const y = wkv6(s.wkv, H, N, r, k, v, decay, p('time_faaaa'));
  s.att_x = h;
  return matvec(p('output.weight'), mul(groupNorm(y, H, m.norm(`blocks.${i}.att.ln_x`)), g));
}

/** ChannelMix: out = sigmoid(W_r·(h + d⊙maa_r)) ⊙ (W_v·relu(W_k·(h + d⊙maa_k))²); updates s.ffn_x. */
export function channelMix6(m: RefModel, i: number, s: RefLayerState, h: Vec): Vec {
  const p = (k: string): Vec => m.w(`blocks.${i}.ffn.${k}`);
  const d = sub(s.ffn_x, h);
  const k = map(matvec(p('key.weight'), shiftMix(h, d, p('time_maa_k'))), reluSquared);
  const r = map(matvec(p('receptance.weight'), shiftMix(h, d, p('time_maa_r'))), sigmoid);
  s.ffn_x = h;
  return zip(r, matvec(p('value.weight'), k), (a, b) => a * b);
}

/** Block i on one residual row x (ln0 already applied by the driver): x + TimeMix(LN1 x), then + ChannelMix(LN2 x). */
export function block6(m: RefModel, i: number, s: RefLayerState, x: Vec): Vec {
  x = add(x, timeMix6(m, i, s, layerNorm(x, m.norm(`blocks.${i}.ln1`))));
  return add(x, channelMix6(m, i, s, layerNorm(x, m.norm(`blocks.${i}.ln2`))));
}
