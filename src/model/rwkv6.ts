/**
 * RWKV-6 ("x060", Finch): weights on the GPU and the per-layer op list, in the spec's order (§3.1, §3.3–3.5).
 * Names follow the checkpoint keys (`blocks.i.att.time_maa_w1` → `att.time_maa_w1`); the Linear weights that one
 * matmul_group dispatch reads are stacked at load time under a name listing their keys.
 *
 * Two op lists with the same math: decode (T ≤ 4) is 8 dispatches per layer — on fast GPUs dispatch count, not
 * bandwidth, sets the decode speed — and prefill (T > 4) keeps tiled matmuls and the chunked WKV (13 dispatches).
 */
import type { Gpu } from '../engine/gpu';
import { copyOp, type Op } from '../engine/op';
import type { GpuMatrix } from '../kernels/types';
import { matmulOp } from '../kernels/matmul';
import { matmulGroupOp, concatRows, type MatmulGroupBlock } from '../kernels/matmul_group';
import { layerNormOp } from '../kernels/layer_norm';
import { lnMixOp, lnMixLoraOp } from '../kernels/ln_mix';
import { tokenShiftOp, ddlerpOp } from '../kernels/token_shift';
import { wkv6Op } from '../kernels/wkv6';
import { wkv6FusedOp } from '../kernels/wkv6_fused';
import { groupNormOp } from '../kernels/group_norm';
import type { ModelConfig } from './config';
import type { TensorReader } from './upload';
import type { LayerState } from './state';
import type { Scratch } from './scratch';

export interface Rwkv6Layer {
  ln1: { weight: GPUBuffer; bias: GPUBuffer };
  ln2: { weight: GPUBuffer; bias: GPUBuffer };
  att: {
    time_maa_x: GPUBuffer; // (1, C)
    time_maa_wkvrg: GPUBuffer; // (5, C) time_maa_w,k,v,r,g stacked
    time_maa_w1: GpuMatrix; // (5R, C) = checkpoint [C, 5R] transposed
    time_maa_w2: { buffer: GPUBuffer; dtype: 'bf16' | 'f16' }; // (5, R, C) as stored
    time_decay: GPUBuffer; // (C)
    time_decay_w2: GpuMatrix; // (C, Rd) = checkpoint [Rd, C] transposed
    time_faaaa: GPUBuffer; // (H, N)
    /** (4C + Rd, C): receptance, key, value, gate .weight and time_decay_w1 (transposed), stacked in that order. */
    rkvg_w1: GpuMatrix;
    output: GpuMatrix;
    ln_x: { weight: GPUBuffer; bias: GPUBuffer };
  };
  ffn: {
    time_maa_kr: GPUBuffer; // (2, C) time_maa_k, time_maa_r
    /** (F + C, C): key.weight (F, C) and receptance.weight (C, C) stacked. */
    key_receptance: GpuMatrix;
    value: GpuMatrix; // (C, F)
  };
}

export async function loadRwkv6Layer(r: TensorReader, cfg: ModelConfig, i: number): Promise<Rwkv6Layer> {
  const { C, H, N, F } = cfg;
  const R = cfg.loraMix!;
  const Rd = cfg.loraDecay!;
  const p = `blocks.${i}.`;
  const vec = [1, 1, C];
  const m = (k: string, rows: number, cols: number) => r.matrix(p + k, rows, cols);
  return {
    ln1: { weight: await r.vector(p + 'ln1.weight', [C]), bias: await r.vector(p + 'ln1.bias', [C]) },
    ln2: { weight: await r.vector(p + 'ln2.weight', [C]), bias: await r.vector(p + 'ln2.bias', [C]) },
    att: {
      time_maa_x: await r.vector(p + 'att.time_maa_x', vec),
      time_maa_wkvrg: await r.stacked(
        ['w', 'k', 'v', 'r', 'g'].map((b) => `${p}att.time_maa_${b}`),
        `${p}att.time_maa_wkvrg`,
        vec,
      ),
      time_maa_w1: await r.matrixT(p + 'att.time_maa_w1', C, 5 * R),
      time_maa_w2: await r.packed(p + 'att.time_maa_w2', [5, R, C]),
      time_decay: await r.vector(p + 'att.time_decay', vec),
      time_decay_w2: await r.matrixT(p + 'att.time_decay_w2', Rd, C),
      time_faaaa: await r.vector(p + 'att.time_faaaa', [H, N]),
      rkvg_w1: concatRows(r.gpu, `${p}att.{receptance,key,value,gate}.weight+time_decay_w1`, [
        await m('att.receptance.weight', C, C),
        await m('att.key.weight', C, C),
        await m('att.value.weight', C, C),
        await m('att.gate.weight', C, C),
        await r.matrixT(p + 'att.time_decay_w1', C, Rd),
      ]),
      output: await r.matrix(p + 'att.output.weight', C, C),
      ln_x: { weight: await r.vector(p + 'att.ln_x.weight', [C]), bias: await r.vector(p + 'att.ln_x.bias', [C]) },
    },
    ffn: {
      time_maa_kr: await r.stacked([p + 'ffn.time_maa_k', p + 'ffn.time_maa_r'], `${p}ffn.time_maa_kr`, vec),
      key_receptance: concatRows(r.gpu, `${p}ffn.{key,receptance}.weight`, [await m('ffn.key.weight', F, C), await m('ffn.receptance.weight', C, C)]),
      value: await r.matrix(p + 'ffn.value.weight', C, F),
    },
  };
}

/** Largest T that takes the fused decode op list (vec matmuls, sequential WKV); longer segments take prefill's. */
export const RWKV6_DECODE_MAX_T = 4;

/**
 * One RWKV-6 block over T rows of s.x (T ≤ s.rows), updating `st`. The residual stream s.x is updated in place.
 * T ≤ 4 (decode) takes the fused list, longer segments the prefill list; both compute the same math.
 */
export function rwkv6LayerOps(gpu: Gpu, cfg: ModelConfig, w: Rwkv6Layer, st: LayerState, s: Scratch, T: number, i: number): Op[] {
  return T <= RWKV6_DECODE_MAX_T ? decodeOps(gpu, cfg, w, st, s, T, i) : prefillOps(gpu, cfg, w, st, s, T, i);
}

/**
 * Decode: 8 dispatches (+ 2 state copies).
 *   1 ln1 + time_maa_x shift + tanh(z·W1)   2 ddlerp   3 r, k, v, silu(g), tanh(x_w·D1) packed
 *   4 decay LoRA up + WKV + GroupNorm·g     5 output (+ residual)
 *   6 ln2 + channel-mix shift   7 relu(k)², σ(r)   8 value ⊙ σ(r) (+ residual)
 */
function decodeOps(gpu: Gpu, cfg: ModelConfig, w: Rwkv6Layer, st: LayerState, s: Scratch, T: number, i: number): Op[] {
  const { C, H, N } = cfg;
  const R = cfg.loraMix!;
  const Rd = cfg.loraDecay!;
  const L = `L${i}`;
  const a = w.att;
  // Packed (block after block) for wkv6_fused; branches in xb: 0 w, 1 k, 2 v, 3 r, 4 g.
  const packed = (rows: number, branch: number, b: number, name: string, epilogue?: MatmulGroupBlock['epilogue']): MatmulGroupBlock => ({
    rows, branch, epilogue, out: s.att6, outOffset: b * T * C, name,
  });
  return [
    // time mix
    lnMixLoraOp(gpu, {
      x: s.x, prev: st.att, weight: w.ln1.weight, bias: w.ln1.bias, mu: a.time_maa_x, w1: a.time_maa_w1, a: s.a, h: s.h, T, C,
      label: `${L}.ln1+att.shift_x+att.time_maa_w1`,
    }),
    ddlerpOp(gpu, {
      a: s.a, prev: st.att, h: s.h, w2: a.time_maa_w2.buffer, w2Dtype: a.time_maa_w2.dtype, mu: a.time_maa_wkvrg,
      out: s.xb, T, C, R, label: `${L}.att.ddlerp`,
    }),
    matmulGroupOp(gpu, {
      x: s.xb, w: a.rkvg_w1, T, label: `${L}.att.receptance+key+value+gate+time_decay_w1`,
      blocks: [
        packed(C, 3, 0, 'receptance'),
        packed(C, 1, 1, 'key'),
        packed(C, 2, 2, 'value'),
        packed(C, 4, 3, 'gate', 'silu'),
        packed(Rd, 0, 4, 'time_decay_w1', 'tanh'),
      ],
    }),
    wkv6FusedOp(gpu, {
      rkvgd: s.att6, d2: a.time_decay_w2, timeDecay: a.time_decay, u: a.time_faaaa, lnWeight: a.ln_x.weight, lnBias: a.ln_x.bias,
      state: st.wkv, o: s.o, T, H, N, eps: 64e-5, label: `${L}.att.time_decay_w2+wkv+ln_x`,
    }),
    matmulOp(gpu, { x: s.o, w: a.output, y: s.x, T, epilogue: 'add', label: `${L}.att.output` }),
    copyOp(`${L}.att_x`, s.a, (T - 1) * C * 4, st.att, 0, C * 4),
    // channel mix
    ...channelMixOps(gpu, cfg, w, st, s, T, L),
  ];
}

/** Prefill: tiled matmuls (stacked where they share an input), the chunked WKV; 13 dispatches (+ 2 state copies). */
function prefillOps(gpu: Gpu, cfg: ModelConfig, w: Rwkv6Layer, st: LayerState, s: Scratch, T: number, i: number): Op[] {
  const { C, H, N } = cfg;
  const R = cfg.loraMix!;
  const Rd = cfg.loraDecay!;
  const L = `L${i}`;
  const a = w.att;
  return [
    // time mix
    layerNormOp(gpu, { x: s.x, y: s.a, weight: w.ln1.weight, bias: w.ln1.bias, T, C, label: `${L}.ln1` }),
    tokenShiftOp(gpu, { a: s.a, prev: st.att, mu: a.time_maa_x, out: s.z, M: 1, T, C, label: `${L}.att.shift_x` }),
    matmulOp(gpu, { x: s.z, w: a.time_maa_w1, y: s.h, T, epilogue: 'tanh', label: `${L}.att.time_maa_w1` }),
    ddlerpOp(gpu, {
      a: s.a, prev: st.att, h: s.h, w2: a.time_maa_w2.buffer, w2Dtype: a.time_maa_w2.dtype, mu: a.time_maa_wkvrg,
      out: s.xb, T, C, R, label: `${L}.att.ddlerp`,
    }),
    // branches in xb: 0 w, 1 k, 2 v, 3 r, 4 g
    matmulGroupOp(gpu, {
      x: s.xb, w: a.rkvg_w1, T, label: `${L}.att.receptance+key+value+gate+time_decay_w1`,
      blocks: [
        { rows: C, branch: 3, out: s.r, name: 'receptance' },
        { rows: C, branch: 1, out: s.k, name: 'key' },
        { rows: C, branch: 2, out: s.v, name: 'value' },
        { rows: C, branch: 4, epilogue: 'silu', out: s.g, name: 'gate' },
        { rows: Rd, branch: 0, epilogue: 'tanh', out: s.dh, name: 'time_decay_w1' },
      ],
    }),
    matmulOp(gpu, { x: s.dh, w: a.time_decay_w2, y: s.dec, T, epilogue: 'bias', bias: a.time_decay, label: `${L}.att.time_decay_w2` }),
    wkv6Op(gpu, { r: s.r, k: s.k, v: s.v, decay: s.dec, u: a.time_faaaa, state: st.wkv, y: s.y, T, H, N, mode: 'chunked', label: `${L}.att.wkv` }),
    groupNormOp(gpu, { y: s.y, g: s.g, weight: a.ln_x.weight, bias: a.ln_x.bias, out: s.o, T, H, N, eps: 64e-5, label: `${L}.att.ln_x` }),
    matmulOp(gpu, { x: s.o, w: a.output, y: s.x, T, epilogue: 'add', label: `${L}.att.output` }),
    copyOp(`${L}.att_x`, s.a, (T - 1) * C * 4, st.att, 0, C * 4),
    // channel mix
    ...channelMixOps(gpu, cfg, w, st, s, T, L),
  ];
}

/**
 * ln2 + shift (one ln_mix dispatch for decode; LayerNorm and token shift apart for prefill, where ln_mix would
 * normalise every row twice), relu(k)² and σ(r) in one stacked matmul, value ⊙ σ(r) into the residual; the ffn_x
 * state copy.
 */
function channelMixOps(gpu: Gpu, cfg: ModelConfig, w: Rwkv6Layer, st: LayerState, s: Scratch, T: number, L: string): Op[] {
  const { C, F } = cfg;
  const f = w.ffn;
  const lnShift: Op[] =
    T <= RWKV6_DECODE_MAX_T
      ? [lnMixOp(gpu, { x: s.x, prev: st.ffn, weight: w.ln2.weight, bias: w.ln2.bias, mu: f.time_maa_kr, a: s.b, out: s.xf, M: 2, T, C, label: `${L}.ln2+ffn.shift` })]
      : [
          layerNormOp(gpu, { x: s.x, y: s.b, weight: w.ln2.weight, bias: w.ln2.bias, T, C, label: `${L}.ln2` }),
          tokenShiftOp(gpu, { a: s.b, prev: st.ffn, mu: f.time_maa_kr, out: s.xf, M: 2, T, C, label: `${L}.ffn.shift` }),
        ];
  return [
    ...lnShift,
    matmulGroupOp(gpu, {
      x: s.xf, w: f.key_receptance, T, label: `${L}.ffn.key+receptance`,
      blocks: [
        { rows: F, branch: 0, epilogue: 'relu2', out: s.kf, name: 'key' },
        { rows: C, branch: 1, epilogue: 'sigmoid', out: s.rf, name: 'receptance' },
      ],
    }),
    matmulOp(gpu, { x: s.kf, w: f.value, y: s.x, T, epilogue: 'mul_add', m: s.rf, label: `${L}.ffn.value` }),
    copyOp(`${L}.ffn_x`, s.b, (T - 1) * C * 4, st.ffn, 0, C * 4),
  ];
}
