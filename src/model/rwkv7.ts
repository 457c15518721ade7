/**
 * RWKV-7 ("x070", Goose): weights on the GPU and the per-layer op list, in the spec's order (§4.1, §4.3–4.5).
 * Names follow the checkpoint keys. Layer 0 produces v_first (per position, not state); layers ≥ 1 mix it back.
 */
import type { Gpu } from '../engine/gpu';
import { copyOp, type Op } from '../engine/op';
import type { GpuMatrix } from '../kernels/types';
import { layerNormOp } from '../kernels/layer_norm';
import { matmulOp } from '../kernels/matmul';
import { tokenShiftOp } from '../kernels/token_shift';
import { rwkv7PrepOp } from '../kernels/rwkv7_prep';
import { WKV7_CHUNKED_MIN_T, wkv7Op } from '../kernels/wkv7';
import { rwkv7OutOp } from '../kernels/rwkv7_out';
import type { ModelConfig } from './config';
import type { TensorReader } from './upload';
import type { LayerState } from './state';
import type { Scratch } from './scratch';

export interface Rwkv7Layer {
  ln1: { weight: GPUBuffer; bias: GPUBuffer };
  ln2: { weight: GPUBuffer; bias: GPUBuffer };
  att: {
    x_rwkvag: GPUBuffer; // (6, C) x_r, x_w, x_k, x_v, x_a, x_g stacked
    w0: GPUBuffer; // (C)
    w1: GpuMatrix; // (Rw, C) = checkpoint [C, Rw] transposed
    w2: GpuMatrix; // (C, Rw)
    a0: GPUBuffer;
    a1: GpuMatrix;
    a2: GpuMatrix;
    v0?: GPUBuffer; // layers ≥ 1
    v1?: GpuMatrix;
    v2?: GpuMatrix;
    g1: GpuMatrix;
    g2: GpuMatrix;
    k_k: GPUBuffer; // (C)
    k_a: GPUBuffer; // (C)
    r_k: GPUBuffer; // (H, N)
    receptance: GpuMatrix;
    key: GpuMatrix;
    value: GpuMatrix;
    output: GpuMatrix;
    ln_x: { weight: GPUBuffer; bias: GPUBuffer };
  };
  ffn: {
    x_k: GPUBuffer; // (1, C)
    key: GpuMatrix; // (F, C)
    value: GpuMatrix; // (C, F)
  };
}

export async function loadRwkv7Layer(r: TensorReader, cfg: ModelConfig, i: number): Promise<Rwkv7Layer> {
  const { C, H, N, F } = cfg;
  const p = `blocks.${i}.att.`;
  const vec = [1, 1, C];
  const lora = async (name: string, R: number) => ({
    [`${name}1`]: await r.matrixT(`${p}${name}1`, C, R),
    [`${name}2`]: await r.matrixT(`${p}${name}2`, R, C),
  });
  const w = await lora('w', cfg.loraW);
  const a = await lora('a', cfg.loraA);
  const g = await lora('g', cfg.loraG);
  const v = i > 0 ? await lora('v', cfg.loraV) : {};
  return {
    ln1: { weight: await r.vector(`blocks.${i}.ln1.weight`, [C]), bias: await r.vector(`blocks.${i}.ln1.bias`, [C]) },
    ln2: { weight: await r.vector(`blocks.${i}.ln2.weight`, [C]), bias: await r.vector(`blocks.${i}.ln2.bias`, [C]) },
    att: {
      x_rwkvag: await r.stacked(['r', 'w', 'k', 'v', 'a', 'g'].map((b) => `${p}x_${b}`), `${p}x_rwkvag`, vec),
      w0: await r.vector(`${p}w0`, vec),
      w1: w.w1!,
      w2: w.w2!,
      a0: await r.vector(`${p}a0`, vec),
      a1: a.a1!,
      a2: a.a2!,
      v0: i > 0 ? await r.vector(`${p}v0`, vec) : undefined,
      v1: v.v1,
      v2: v.v2,
      g1: g.g1!,
      g2: g.g2!,
      k_k: await r.vector(`${p}k_k`, vec),
      k_a: await r.vector(`${p}k_a`, vec),
      r_k: await r.vector(`${p}r_k`, [H, N]),
      receptance: await r.matrix(`${p}receptance.weight`, C, C),
      key: await r.matrix(`${p}key.weight`, C, C),
      value: await r.matrix(`${p}value.weight`, C, C),
      output: await r.matrix(`${p}output.weight`, C, C),
      ln_x: { weight: await r.vector(`${p}ln_x.weight`, [C]), bias: await r.vector(`${p}ln_x.bias`, [C]) },
    },
    ffn: {
      x_k: await r.vector(`blocks.${i}.ffn.x_k`, vec),
      key: await r.matrix(`blocks.${i}.ffn.key.weight`, F, C),
      value: await r.matrix(`blocks.${i}.ffn.value.weight`, C, F),
    },
  };
}

/** One RWKV-7 block over T rows of s.x, updating `st`; s.vFirst carries layer 0's v for the same rows. */
export function rwkv7LayerOps(gpu: Gpu, cfg: ModelConfig, w: Rwkv7Layer, st: LayerState, s: Scratch, T: number, i: number): Op[] {
  const { C, H, N } = cfg;
  const L = `L${i}`;
  const a = w.att;
  // branches in xb: 0 r, 1 w, 2 k, 3 v, 4 a, 5 g
  const ops: Op[] = [
    layerNormOp(gpu, { x: s.x, y: s.a, weight: w.ln1.weight, bias: w.ln1.bias, T, C, label: `${L}.ln1` }),
    tokenShiftOp(gpu, { a: s.a, prev: st.att, mu: a.x_rwkvag, out: s.xb, M: 6, T, C, label: `${L}.att.shift` }),
    copyOp(`${L}.att_x`, s.a, (T - 1) * C * 4, st.att, 0, C * 4),
    matmulOp(gpu, { x: s.xb, xRowOffset: 0, w: a.receptance, y: s.r, T, label: `${L}.att.receptance` }),
    matmulOp(gpu, { x: s.xb, xRowOffset: 2 * T, w: a.key, y: s.k, T, label: `${L}.att.key` }),
    matmulOp(gpu, { x: s.xb, xRowOffset: 3 * T, w: a.value, y: s.v, T, label: `${L}.att.value` }),
    matmulOp(gpu, { x: s.xb, xRowOffset: 1 * T, w: a.w1, y: s.lora, T, epilogue: 'tanh', label: `${L}.att.w1` }),
    matmulOp(gpu, { x: s.lora, w: a.w2, y: s.dec, T, epilogue: 'bias', bias: a.w0, label: `${L}.att.w2` }),
    matmulOp(gpu, { x: s.xb, xRowOffset: 4 * T, w: a.a1, y: s.lora, T, label: `${L}.att.a1` }),
    matmulOp(gpu, { x: s.lora, w: a.a2, y: s.alog, T, epilogue: 'bias', bias: a.a0, label: `${L}.att.a2` }),
    matmulOp(gpu, { x: s.xb, xRowOffset: 5 * T, w: a.g1, y: s.lora, T, epilogue: 'sigmoid', label: `${L}.att.g1` }),
    matmulOp(gpu, { x: s.lora, w: a.g2, y: s.g, T, label: `${L}.att.g2` }),
  ];
  if (i > 0) {
    ops.push(
      matmulOp(gpu, { x: s.xb, xRowOffset: 3 * T, w: a.v1!, y: s.lora, T, label: `${L}.att.v1` }),
      matmulOp(gpu, { x: s.lora, w: a.v2!, y: s.vgate, T, epilogue: 'bias', bias: a.v0!, label: `${L}.att.v2` }),
    );
  }
  ops.push(
    ...rwkv7PrepOp(gpu, {
      k: s.k, aLogit: s.alog, v: s.v, vFirst: s.vFirst, vGate: i > 0 ? s.vgate : undefined, kk_scale: a.k_k, ka: a.k_a,
      kk: s.kk, alpha: s.alpha, layer0: i === 0, T, H, N, label: `${L}.att.prep`,
    }),
    wkv7Op(gpu, { r: s.r, w: s.dec, k: s.k, v: s.v, kk: s.kk, alpha: s.alpha, state: st.wkv, y: s.y, T, H, N, mode: T >= WKV7_CHUNKED_MIN_T ? 'chunked' : 'seq', label: `${L}.att.wkv7` }),
    ...rwkv7OutOp(gpu, { y: s.y, r: s.r, k: s.k, v: s.v, rk: a.r_k, g: s.g, weight: a.ln_x.weight, bias: a.ln_x.bias, out: s.y, T, H, N, label: `${L}.att.out` }),
    matmulOp(gpu, { x: s.y, w: a.output, y: s.x, T, epilogue: 'add', label: `${L}.att.output` }),
    // channel mix
    layerNormOp(gpu, { x: s.x, y: s.b, weight: w.ln2.weight, bias: w.ln2.bias, T, C, label: `${L}.ln2` }),
    tokenShiftOp(gpu, { a: s.b, prev: st.ffn, mu: w.ffn.x_k, out: s.xf, M: 1, T, C, label: `${L}.ffn.shift` }),
    copyOp(`${L}.ffn_x`, s.b, (T - 1) * C * 4, st.ffn, 0, C * 4),
    matmulOp(gpu, { x: s.xf, w: w.ffn.key, y: s.kf, T, epilogue: 'relu2', label: `${L}.ffn.key` }),
    matmulOp(gpu, { x: s.kf, w: w.ffn.value, y: s.x, T, epilogue: 'add', label: `${L}.ffn.value` }),
  );
  return ops;
}
