/** All activation buffers of one forward, sized for `rows` rows. Shapes use the spec's letters (§3). */
import type { Gpu } from '../engine/gpu';
import { createStorage } from '../engine/buffers';
import type { ModelConfig } from './config';

export interface Scratch {
  rows: number;
  ids: GPUBuffer; // (T) i32, -1 = row given as data
  xin: GPUBuffer; // (T, C) raw input rows (embeddings / image rows), before ln0
  x: GPUBuffer; // (T, C) residual stream
  a: GPUBuffer; // (T, C) ln1 output
  z: GPUBuffer; // (T, C) time_maa_x mix (LoRA input)
  h: GPUBuffer; // (T, 5·R) tanh(z·W1)
  xb: GPUBuffer; // (5, T, C) branch inputs w,k,v,r,g
  r: GPUBuffer; // (T, C)
  k: GPUBuffer; // (T, C)
  v: GPUBuffer; // (T, C)
  g: GPUBuffer; // (T, C) silu(gate)
  dh: GPUBuffer; // (T, Rd) tanh(xw·D1)
  dec: GPUBuffer; // (T, C) decay logit δ
  y: GPUBuffer; // (T, C) wkv output
  o: GPUBuffer; // (T, C) GN(y)·g
  b: GPUBuffer; // (T, C) ln2 output
  xf: GPUBuffer; // (2, T, C) channel-mix inputs k, r
  kf: GPUBuffer; // (T, F) relu(k)²
  rf: GPUBuffer; // (T, C) sigmoid(r)
  att6: GPUBuffer; // (min(T, 4), 4C + Rd) RWKV-6 decode: r, k, v, g, dh packed block after block (matmul_group → wkv6_fused)
  lora: GPUBuffer; // (T, max v7 LoRA rank)
  alog: GPUBuffer; // (T, C) v7 α logit
  vgate: GPUBuffer; // (T, C) v7 value-residual gate logit
  kk: GPUBuffer; // (T, C) v7 κ̂
  alpha: GPUBuffer; // (T, C) v7 α
  vFirst: GPUBuffer; // (T, C) v7 layer-0 v of the same rows
  lnOut: GPUBuffer; // (1, C)
  logits: GPUBuffer; // (V)
  all: GPUBuffer[];
}

export function createScratch(gpu: Gpu, cfg: ModelConfig, rows: number): Scratch {
  const { C, F, V } = cfg;
  const R = cfg.loraMix ?? 0;
  const Rd = cfg.loraDecay ?? 0;
  const all: GPUBuffer[] = [];
  const f32 = (label: string, n: number) => {
    const b = createStorage(gpu, `scratch.${label}`, Math.max(1, n) * 4);
    all.push(b);
    return b;
  };
  const T = rows;
  return {
    rows,
    ids: f32('ids', T),
    xin: f32('xin', T * C),
    x: f32('x', T * C),
    a: f32('a', T * C),
    z: f32('z', T * C),
    h: f32('h', T * 5 * Math.max(R, 1)),
    xb: f32('xb', 6 * T * C), // 6 branches for RWKV-7's x_r..x_g
    r: f32('r', T * C),
    k: f32('k', T * C),
    v: f32('v', T * C),
    g: f32('g', T * C),
    dh: f32('dh', T * Math.max(Rd, 1)),
    dec: f32('dec', T * C),
    y: f32('y', T * C),
    o: f32('o', T * C),
    b: f32('b', T * C),
    xf: f32('xf', 2 * T * C),
    kf: f32('kf', T * F),
    rf: f32('rf', T * C),
    att6: f32('att6', cfg.arch === 'rwkv6' ? Math.min(T, 4) * (4 * C + Rd) : 1),
    lora: f32('lora', T * Math.max(1, cfg.loraW, cfg.loraA, cfg.loraV, cfg.loraG)),
    alog: f32('alog', cfg.arch === 'rwkv7' ? T * C : 1),
    vgate: f32('vgate', cfg.arch === 'rwkv7' ? T * C : 1),
    kk: f32('kk', cfg.arch === 'rwkv7' ? T * C : 1),
    alpha: f32('alpha', cfg.arch === 'rwkv7' ? T * C : 1),
    vFirst: f32('vFirst', cfg.arch === 'rwkv7' ? T * C : 1),
    lnOut: f32('lnOut', C),
    logits: f32('logits', V),
    all,
  };
}

export function destroyScratch(s: Scratch): void {
  for (const b of s.all) b.destroy();
}
