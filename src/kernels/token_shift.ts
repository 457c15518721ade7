/**
 * Token shift (shaders/token_shift.wgsl): mixes of each LN output row a_t with the row before it
 * (p_0 = prev, the last row of the previous call; d_t = p_t − a_t).
 * - tokenShiftOp: out[m][t] = a_t + d_t ⊙ μ[m] — RWKV-6 time_maa_x (M = 1), channel mix time_maa_k/r (M = 2),
 *   RWKV-7 x_r…x_g (M = 6).
 * - ddlerpOp: RWKV-6's data-dependent lerp out[b][t] = a_t + d_t ⊙ (μ[b] + h[t, bR:(b+1)R]·W2[b]), b = w,k,v,r,g.
 * `out` must be a different buffer from `a` and `prev` (rows are read by their neighbours).
 */
import type { Gpu } from '../engine/gpu';
import { createUniform } from '../engine/buffers';
import type { KernelOp } from '../engine/op';
import { ShapeError } from '../errors';
import { needBytes, needInt } from './types';
import code from '../../shaders/token_shift.wgsl?raw';

const SHADER = { name: 'token_shift', code };
/** Rows of t per ddlerp workgroup (DL_TT in the shader) when T > 1; T = 1 uses 1 (DL_ONE). */
const DL_TT = 8;

export interface TokenShiftArgs {
  /** (T, C) f32 LN output rows. */
  a: GPUBuffer;
  /** (C) f32: the LN output of the row before a_0 (the token-shift state). */
  prev: GPUBuffer;
  /** (M, C) f32: M mix vectors stacked. */
  mu: GPUBuffer;
  /** (M, T, C) f32. */
  out: GPUBuffer;
  M: number;
  T: number;
  C: number;
  label?: string;
}

/**
 * @example
 * ops.push(tokenShiftOp(gpu, { a: lnOut, prev: st.ffn, mu: ffn.time_maa_kr, out: xf, M: 2, T, C, label: 'L0.ffn.shift' }));
 */
export function tokenShiftOp(gpu: Gpu, p: TokenShiftArgs): KernelOp {
  const label = p.label ?? 'token_shift';
  const { M, T, C } = p;
  needInt(M, 1, `${label}: M`);
  needInt(T, 1, `${label}: T`);
  needInt(C, 1, `${label}: C`);
  checkCommon(gpu, label, p, T, C, M);
  needBytes(p.mu, M * C * 4, `${label}: mu (${M}, ${C})`);
  const maxDim = gpu.limits.maxComputeWorkgroupsPerDimension;
  if (T > maxDim || M > maxDim) throw new ShapeError(`${label}: T = ${T} or M = ${M} exceeds the dispatch limit ${maxDim}`);
  const uniform = createUniform(gpu, `${label}.dims`, new Uint32Array([T, C, M, 0]));
  return {
    kind: 'kernel',
    label,
    shader: SHADER,
    entry: 'token_shift',
    layout: ['uniform', 'read', 'read', 'read', 'rw'],
    bindings: [uniform, p.a, p.prev, p.mu, p.out],
    workgroups: [Math.ceil(C / 64), T, M],
  };
}

export interface DdlerpArgs {
  /** (T, C) f32 ln1 output rows. */
  a: GPUBuffer;
  /** (C) f32 att_prev. */
  prev: GPUBuffer;
  /** (T, 5·R) f32: tanh(z·W1), slices w,k,v,r,g of R columns each. */
  h: GPUBuffer;
  /** (5, R, C) 16-bit values packed two per u32: time_maa_w2 as stored ([b][r][c], c contiguous). */
  w2: GPUBuffer;
  w2Dtype: 'bf16' | 'f16';
  /** (5, C) f32: time_maa_w, _k, _v, _r, _g stacked. */
  mu: GPUBuffer;
  /** (5, T, C) f32: x_w, x_k, x_v, x_r, x_g. */
  out: GPUBuffer;
  T: number;
  C: number;
  R: number;
  label?: string;
}

/**
 * @example
 * ops.push(ddlerpOp(gpu, { a, prev: st.att, h, w2: att.time_maa_w2.buffer, w2Dtype: 'bf16', mu: att.time_maa_wkvrg, out: xb, T, C, R }));
 */
export function ddlerpOp(gpu: Gpu, p: DdlerpArgs): KernelOp {
  const label = p.label ?? 'ddlerp';
  const { T, C, R } = p;
  needInt(T, 1, `${label}: T`);
  needInt(C, 2, `${label}: C`);
  needInt(R, 1, `${label}: R`);
  if (C % 2 !== 0) throw new ShapeError(`${label}: C = ${C} must be even (W2 rows are packed 16-bit pairs)`);
  if (p.w2Dtype !== 'bf16' && p.w2Dtype !== 'f16') throw new ShapeError(`${label}: w2Dtype must be 'bf16' or 'f16'`);
  checkCommon(gpu, label, p, T, C, 5);
  needBytes(p.mu, 5 * C * 4, `${label}: mu (5, ${C})`);
  needBytes(p.h, T * 5 * R * 4, `${label}: h (${T}, ${5 * R})`);
  needBytes(p.w2, 5 * R * C * 2, `${label}: w2 (5, ${R}, ${C}) 16-bit`);
  if (p.h === p.out) throw new ShapeError(`${label}: h and out must be different buffers`);
  const tt = T === 1 ? 1 : DL_TT; // decode: one row per workgroup (DL_ONE), no padding rows computed
  const gy = Math.ceil(T / tt);
  if (gy > gpu.limits.maxComputeWorkgroupsPerDimension) throw new ShapeError(`${label}: T = ${T} exceeds the dispatch limit`);
  const uniform = createUniform(gpu, `${label}.dims`, new Uint32Array([T, C, 5, R]));
  return {
    kind: 'kernel',
    label,
    shader: SHADER,
    entry: 'ddlerp',
    defines: { W_F16: p.w2Dtype === 'f16', DL_ONE: tt === 1 },
    layout: ['uniform', 'read', 'read', 'read', 'rw', 'read', 'read'],
    bindings: [uniform, p.a, p.prev, p.mu, p.out, p.h, p.w2],
    workgroups: [Math.ceil(C / 128), gy, 5],
  };
}

function checkCommon(gpu: Gpu, label: string, p: { a: GPUBuffer; prev: GPUBuffer; out: GPUBuffer }, T: number, C: number, M: number): void {
  needBytes(p.a, T * C * 4, `${label}: a (${T}, ${C})`);
  needBytes(p.prev, C * 4, `${label}: prev (${C})`);
  needBytes(p.out, M * T * C * 4, `${label}: out (${M}, ${T}, ${C})`);
  if (p.out === p.a || p.out === p.prev) throw new ShapeError(`${label}: out must not alias a or prev`);
  if (Math.ceil(C / 64) > gpu.limits.maxComputeWorkgroupsPerDimension) throw new ShapeError(`${label}: C = ${C} too large`);
}
