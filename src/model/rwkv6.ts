/**
 * RWKV-6 ("x060", Finch): weights on the GPU and the per-layer op list, in the spec's order (§3.1, §3.3–3.5).
 * Names follow the checkpoint keys (`blocks.i.att.time_maa_w1` → `att.time_maa_w1`).
 */
import type { Gpu } from '../engine/gpu';
import { copyOp, type Op } from '../engine/op';
import type { GpuMatrix } from '../kernels/types';
import { layerNormOp } from '../kernels/layer_norm';
import { matmulOp } from '../kernels/matmul';
import { tokenShiftOp, ddlerpOp } from '../kernels/token_shift';
import { wkv6Op } from '../kernels/wkv6';
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
    time_decay_w1: GpuMatrix; // (Rd, C)
    time_decay_w2: GpuMatrix; // (C, Rd)
    time_faaaa: GPUBuffer; // (H, N)
    receptance: GpuMatrix;
    key: GpuMatrix;
    value: GpuMatrix;
    gate: GpuMatrix;
    output: GpuMatrix;
    ln_x: { weight: GPUBuffer; bias: GPUBuffer };
  };
  ffn: {
    time_maa_kr: GPUBuffer; // (2, C) time_maa_k, time_maa_r
    key: GpuMatrix; // (F, C)
    receptance: GpuMatrix; // (C, C)
    value: GpuMatrix; // (C, F)
  };
}

export async function loadRwkv6Layer(r: TensorReader, cfg: ModelConfig, i: number): Promise<Rwkv6Layer> {
  const { C, H, N, F } = cfg;
  const R = cfg.loraMix!;
  const Rd = cfg.loraDecay!;
  const p = `blocks.${i}.`;
  const vec = [1, 1, C];
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
      time_decay_w1: await r.matrixT(p + 'att.time_decay_w1', C, Rd),
      time_decay_w2: await r.matrixT(p + 'att.time_decay_w2', Rd, C),
      time_faaaa: await r.vector(p + 'att.time_faaaa', [H, N]),
      receptance: await r.matrix(p + 'att.receptance.weight', C, C),
      key: await r.matrix(p + 'att.key.weight', C, C),
      value: await r.matrix(p + 'att.value.weight', C, C),
      gate: await r.matrix(p + 'att.gate.weight', C, C),
      output: await r.matrix(p + 'att.output.weight', C, C),
      ln_x: { weight: await r.vector(p + 'att.ln_x.weight', [C]), bias: await r.vector(p + 'att.ln_x.bias', [C]) },
    },
    ffn: {
      time_maa_kr: await r.stacked([p + 'ffn.time_maa_k', p + 'ffn.time_maa_r'], `${p}ffn.time_maa_kr`, vec),
      key: await r.matrix(p + 'ffn.key.weight', F, C),
      receptance: await r.matrix(p + 'ffn.receptance.weight', C, C),
      value: await r.matrix(p + 'ffn.value.weight', C, F),
    },
  };
}

/**
 * One RWKV-6 block over T rows of s.x (T ≤ s.rows), updating `st`. The residual stream s.x is updated in place.
 * `wkvMode` picks the single-step sequential WKV kernel (decode) or the chunked one (prefill).
 */
export function rwkv6LayerOps(gpu: Gpu, cfg: ModelConfig, w: Rwkv6Layer, st: LayerState, s: Scratch, T: number, i: number): Op[] {
  const { C, H, N } = cfg;
  const R = cfg.loraMix!;
  const L = `L${i}`;
  const a = w.att;
  const f = w.ffn;
  const wkvMode = T <= 4 ? 'seq' : 'chunked';
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
    matmulOp(gpu, { x: s.xb, xRowOffset: 3 * T, w: a.receptance, y: s.r, T, label: `${L}.att.receptance` }),
    matmulOp(gpu, { x: s.xb, xRowOffset: 1 * T, w: a.key, y: s.k, T, label: `${L}.att.key` }),
    matmulOp(gpu, { x: s.xb, xRowOffset: 2 * T, w: a.value, y: s.v, T, label: `${L}.att.value` }),
    matmulOp(gpu, { x: s.xb, xRowOffset: 4 * T, w: a.gate, y: s.g, T, epilogue: 'silu', label: `${L}.att.gate` }),
    matmulOp(gpu, { x: s.xb, xRowOffset: 0, w: a.time_decay_w1, y: s.dh, T, epilogue: 'tanh', label: `${L}.att.time_decay_w1` }),
    matmulOp(gpu, { x: s.dh, w: a.time_decay_w2, y: s.dec, T, epilogue: 'bias', bias: a.time_decay, label: `${L}.att.time_decay_w2` }),
    wkv6Op(gpu, { r: s.r, k: s.k, v: s.v, decay: s.dec, u: a.time_faaaa, state: st.wkv, y: s.y, T, H, N, mode: wkvMode, label: `${L}.att.wkv` }),
    groupNormOp(gpu, { y: s.y, g: s.g, weight: a.ln_x.weight, bias: a.ln_x.bias, out: s.o, T, H, N, eps: 64e-5, label: `${L}.att.ln_x` }),
    matmulOp(gpu, { x: s.o, w: a.output, y: s.x, T, epilogue: 'add', label: `${L}.att.output` }),
    copyOp(`${L}.att_x`, s.a, (T - 1) * C * 4, st.att, 0, C * 4),
    // channel mix
    layerNormOp(gpu, { x: s.x, y: s.b, weight: w.ln2.weight, bias: w.ln2.bias, T, C, label: `${L}.ln2` }),
    tokenShiftOp(gpu, { a: s.b, prev: st.ffn, mu: f.time_maa_kr, out: s.xf, M: 2, T, C, label: `${L}.ffn.shift` }),
    matmulOp(gpu, { x: s.xf, xRowOffset: 0, w: f.key, y: s.kf, T, epilogue: 'relu2', label: `${L}.ffn.key` }),
    matmulOp(gpu, { x: s.xf, xRowOffset: T, w: f.receptance, y: s.rf, T, epilogue: 'sigmoid', label: `${L}.ffn.receptance` }),
    matmulOp(gpu, { x: s.kf, w: f.value, y: s.x, T, epilogue: 'mul_add', m: s.rf, label: `${L}.ffn.value` }),
    copyOp(`${L}.ffn_x`, s.b, (T - 1) * C * 4, st.ffn, 0, C * 4),
  ];
}
