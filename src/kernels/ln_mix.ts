/**
 * LayerNorm fused with token shift (shaders/ln_mix.wgsl): a_t = LN(x_t), d_t = p_t − a_t with p_0 = prev and
 * p_t = a_{t−1}; writes a and either the M static mixes out[m][t] = a_t + d_t ⊙ μ[m] (lnMixOp: RWKV-6 ln2 + channel-mix
 * shift, ln1 + time_maa_x shift) or RWKV-6's LoRA down-projection h_t = tanh((a_t + d_t ⊙ μ_x)·W1ᵀ) (lnMixLoraOp:
 * ln1 + time_maa_x shift + time_maa_w1 in one dispatch, for decode).
 */
import type { Gpu } from '../engine/gpu';
import { createUniform } from '../engine/buffers';
import type { KernelOp } from '../engine/op';
import type { Defines } from '../engine/wgsl';
import { ShapeError } from '../errors';
import { grid2d, needBytes, needInt, type GpuMatrix } from './types';
import code from '../../shaders/ln_mix.wgsl?raw';

const SHADER = { name: 'ln_mix', code };
const PAIRS = 8;
const MAX_WG = 256;
/** Weights one ln_mix_lora workgroup aims to read (sets ROWS, the LoRA outputs per workgroup), per reduction. */
const LORA_WEIGHTS_PER_WG = { subgroup: 32768, workgroup: 8192 } as const;
/** Partial sums ln_mix_lora's workgroup array holds (RED_N in the shader): WG · ROWS ≤ this. */
const LORA_PARTIALS = 2048;
/** Largest C: 2 · PAIRS · 256. */
export const LN_MIX_MAX_C = 2 * PAIRS * MAX_WG;

interface LnCommon {
  /** (T, C) f32 LN input rows (the residual stream). */
  x: GPUBuffer;
  /** (C) f32: the LN output of the row before x[0] (the token-shift state). */
  prev: GPUBuffer;
  /** (C) f32 LN weight and bias. */
  weight: GPUBuffer;
  bias: GPUBuffer;
  /** (T, C) f32: the LN output rows are written here. */
  a: GPUBuffer;
  T: number;
  C: number;
  /** LayerNorm eps (default 1e-5, spec §3). */
  eps?: number;
  label?: string;
}

export interface LnMixArgs extends LnCommon {
  /** (M, C) f32 mix vectors. */
  mu: GPUBuffer;
  /** (M, T, C) f32. */
  out: GPUBuffer;
  M: number;
}

export interface LnMixLoraArgs extends LnCommon {
  /** (C) f32: time_maa_x. */
  mu: GPUBuffer;
  /** (NL, C) 16-bit: time_maa_w1 in the Linear layout (NL = 5·R). */
  w1: GpuMatrix;
  /** (T, NL) f32: tanh(z · W1ᵀ). */
  h: GPUBuffer;
  /**
   * How the LoRA dot products reduce: 'subgroup' (default when the device has subgroups and z fits in workgroup
   * memory) — z in workgroup memory, one subgroup per output row; 'workgroup' — per-thread partials and a two-stage
   * sum in workgroup memory.
   */
  reduce?: 'subgroup' | 'workgroup';
}

/**
 * One workgroup per row.
 *
 * @example
 * ops.push(lnMixOp(gpu, { x: s.x, prev: st.ffn, weight: ln2.weight, bias: ln2.bias, mu: ffn.time_maa_kr, a: s.b, out: s.xf, M: 2, T, C }));
 */
export function lnMixOp(gpu: Gpu, p: LnMixArgs): KernelOp {
  const label = p.label ?? 'ln_mix';
  const { T, C, M } = p;
  needInt(M, 1, `${label}: M`);
  const eps = checkCommon(gpu, label, p);
  needBytes(p.mu, M * C * 4, `${label}: mu (${M}, ${C})`);
  needBytes(p.out, M * T * C * 4, `${label}: out (${M}, ${T}, ${C})`);
  for (const b of [p.x, p.prev, p.weight, p.bias, p.mu, p.a]) if (b === p.out) throw new ShapeError(`${label}: out must not alias an input or a`);
  return {
    kind: 'kernel',
    label,
    shader: SHADER,
    entry: 'ln_mix',
    defines: { PAIRS_N: pairsFor(C, wgFor(C)) },
    overrides: { WG: wgFor(C) },
    layout: ['uniform', 'read', 'read', 'read', 'read', 'read', 'rw', 'rw'],
    bindings: [params(gpu, label, T, C, M, 0, eps), p.x, p.prev, p.weight, p.bias, p.mu, p.a, p.out],
    workgroups: grid2d(T, gpu.limits.maxComputeWorkgroupsPerDimension),
  };
}

/**
 * Workgroups (ceil(NL / ROWS), T); each redoes the LN of its row and computes ROWS LoRA outputs, ROWS ≈ 32K / C with
 * subgroups, else ≈ 8K / C with WG·ROWS ≤ 2048 partial sums (a power of two, 4 at least).
 *
 * @example
 * ops.push(lnMixLoraOp(gpu, { x: s.x, prev: st.att, weight: ln1.weight, bias: ln1.bias, mu: att.time_maa_x, w1: att.time_maa_w1, a: s.a, h: s.h, T: 1, C }));
 */
export function lnMixLoraOp(gpu: Gpu, p: LnMixLoraArgs): KernelOp {
  const label = p.label ?? 'ln_mix_lora';
  const { T, C, w1 } = p;
  const eps = checkCommon(gpu, label, p);
  const NL = w1.rows;
  if (w1.cols !== C) throw new ShapeError(`${label}: w1 is [${NL}, ${w1.cols}], needs ${C} columns`);
  needBytes(w1.buffer, NL * C * 2, `${label}: w1 (${NL}, ${C})`);
  needBytes(p.mu, C * 4, `${label}: mu (${C})`);
  needBytes(p.h, T * NL * 4, `${label}: h (${T}, ${NL})`);
  for (const b of [p.x, p.prev, p.weight, p.bias, p.mu, p.a]) if (b === p.h) throw new ShapeError(`${label}: h must not alias an input or a`);
  const wg = wgFor(C);
  const zBytes = 4 * (C + 256) + 16; // the subgroup path's workgroup memory: z, the LN sums, the subgroup counter
  const reduce = p.reduce ?? (gpu.features.subgroups && zBytes <= gpu.limits.maxComputeWorkgroupStorageSize ? 'subgroup' : 'workgroup');
  if (reduce === 'subgroup' && !gpu.features.subgroups) throw new ShapeError(`${label}: reduce 'subgroup' needs the subgroups feature`);
  if (reduce === 'subgroup' && zBytes > gpu.limits.maxComputeWorkgroupStorageSize) {
    throw new ShapeError(`${label}: reduce 'subgroup' needs ${zBytes} B of workgroup memory, the device has ${gpu.limits.maxComputeWorkgroupStorageSize}`);
  }
  // Workgroup path: the shader's fixed partial-sum array (RED_N) holds WG · ROWS.
  const rowsFit = reduce === 'subgroup' ? Infinity : LORA_PARTIALS / wg;
  let rows = 4;
  while (rows * 2 * C <= LORA_WEIGHTS_PER_WG[reduce] && rows * 2 <= rowsFit && rows < NL) rows *= 2;
  const gx = Math.ceil(NL / rows);
  const defines: Defines = { LORA: true, PAIRS_N: pairsFor(C, wg) };
  if (w1.dtype === 'f16') defines.W_F16 = true;
  if (reduce === 'subgroup') {
    defines.SUBGROUP = true;
    defines.ZS_N = `${C / 2}u`;
  }
  const maxDim = gpu.limits.maxComputeWorkgroupsPerDimension;
  if (gx > maxDim || T > maxDim) throw new ShapeError(`${label}: T = ${T} or NL = ${NL} exceeds the dispatch limit`);
  return {
    kind: 'kernel',
    label,
    shader: SHADER,
    entry: 'ln_mix_lora',
    defines,
    overrides: { WG: wg, ROWS: rows },
    layout: ['uniform', 'read', 'read', 'read', 'read', 'read', 'rw', 'read', 'rw'],
    bindings: [params(gpu, label, T, C, 1, NL, eps), p.x, p.prev, p.weight, p.bias, p.mu, p.a, w1.buffer, p.h],
    workgroups: [gx, T],
  };
}

function checkCommon(gpu: Gpu, label: string, p: LnCommon): number {
  const { T, C } = p;
  const eps = p.eps ?? 1e-5;
  needInt(T, 1, `${label}: T`);
  needInt(C, 2, `${label}: C`);
  if (C % 2 !== 0 || C > LN_MIX_MAX_C) throw new ShapeError(`${label}: C = ${C} must be even and ≤ ${LN_MIX_MAX_C}`);
  if (!(eps > 0)) throw new ShapeError(`${label}: eps must be > 0, got ${eps}`);
  needBytes(p.x, T * C * 4, `${label}: x (${T}, ${C})`);
  needBytes(p.prev, C * 4, `${label}: prev (${C})`);
  needBytes(p.weight, C * 4, `${label}: weight (${C})`);
  needBytes(p.bias, C * 4, `${label}: bias (${C})`);
  needBytes(p.a, T * C * 4, `${label}: a (${T}, ${C})`);
  for (const b of [p.x, p.prev, p.weight, p.bias]) if (b === p.a) throw new ShapeError(`${label}: a must not alias an input`);
  return eps;
}

function params(gpu: Gpu, label: string, T: number, C: number, M: number, NL: number, eps: number): GPUBuffer {
  const buf = new ArrayBuffer(32);
  const dv = new DataView(buf);
  dv.setUint32(0, T, true);
  dv.setUint32(4, C, true);
  dv.setUint32(8, M, true);
  dv.setUint32(12, NL, true);
  dv.setFloat32(16, eps, true);
  return createUniform(gpu, `${label}.params`, new Uint8Array(buf));
}

/** Register pairs per thread for the shader's PAIRS: C/2 pairs over WG threads, rounded up to 1, 2, 4 or 8. */
function pairsFor(C: number, wg: number): string {
  let n = 1;
  while (n * wg * 2 < C) n *= 2;
  return `${n}u`;
}

/** ~4 pairs per thread when C is small, up to PAIRS at C = 4096 (as layer_norm). */
function wgFor(C: number): number {
  let w = 32;
  while (w < Math.ceil(C / 2 / 4) && w < MAX_WG) w *= 2;
  return w;
}
