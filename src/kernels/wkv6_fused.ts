/**
 * The RWKV-6 time-mix core for decode in one dispatch (shaders/wkv6_fused.wgsl): decay LoRA up-projection
 * δ = time_decay + dh·D2ᵀ, the WKV recurrence (as wkv6 'seq', state updated in place) and the gated GroupNorm
 * o = (GN_H(y)·ln_w + ln_b) ⊙ g (spec §3.3 steps 5, 7, 8).
 */
import type { Gpu } from '../engine/gpu';
import { createUniform } from '../engine/buffers';
import type { KernelOp } from '../engine/op';
import { ShapeError } from '../errors';
import { needBytes, needInt, type GpuMatrix } from './types';
import { GROUP_NORM_EPS } from './group_norm';
import code from '../../shaders/wkv6_fused.wgsl?raw';

const SHADER = { name: 'wkv6_fused', code };
/** Largest decay LoRA rank (MAX_RD in the shader). */
export const WKV6_FUSED_MAX_RD = 256;

export interface Wkv6FusedArgs {
  /**
   * (4·T·C + T·Rd) f32, block after block: r, k, v, g (T, C) each, then dh (T, Rd) — g already SiLU'd, dh already
   * tanh'd (the packed output of matmulGroupOp over the ddlerp branches).
   */
  rkvgd: GPUBuffer;
  /** (C, Rd) 16-bit: time_decay_w2 in the Linear layout. */
  d2: GpuMatrix;
  /** (C) f32. */
  timeDecay: GPUBuffer;
  /** (H, N) f32 time_faaaa. */
  u: GPUBuffer;
  /** (C) f32 ln_x.weight and ln_x.bias. */
  lnWeight: GPUBuffer;
  lnBias: GPUBuffer;
  /** (H, N, N) f32 state [head][key j][value i]; read at the start, overwritten with the final state. */
  state: GPUBuffer;
  /** (T, C) f32 output. */
  o: GPUBuffer;
  T: number;
  H: number;
  /** Head size: a power of two ≤ 64. */
  N: number;
  /** GroupNorm eps (default 64e-5). */
  eps?: number;
  label?: string;
}

/**
 * One workgroup of N invocations per head, sequential over the T tokens (meant for decode, T ≤ 4).
 *
 * @example
 * ops.push(wkv6FusedOp(gpu, { rkvgd: s.att6, d2: att.time_decay_w2, timeDecay: att.time_decay, u: att.time_faaaa,
 *   lnWeight: att.ln_x.weight, lnBias: att.ln_x.bias, state: st.wkv, o: s.o, T: 1, H, N }));
 */
export function wkv6FusedOp(gpu: Gpu, a: Wkv6FusedArgs): KernelOp {
  const label = a.label ?? 'wkv6_fused';
  const { T, H, N } = a;
  const eps = a.eps ?? GROUP_NORM_EPS;
  needInt(T, 1, `${label}: T`);
  needInt(H, 1, `${label}: H`);
  needInt(N, 2, `${label}: N`);
  if (N > 64 || (N & (N - 1)) !== 0) throw new ShapeError(`${label}: head size N = ${N} must be a power of two ≤ 64`);
  if (H > gpu.limits.maxComputeWorkgroupsPerDimension) throw new ShapeError(`${label}: H = ${H} heads exceed the dispatch limit`);
  if (!(eps > 0)) throw new ShapeError(`${label}: eps must be > 0, got ${eps}`);
  const C = H * N;
  const Rd = a.d2.cols;
  if (a.d2.rows !== C) throw new ShapeError(`${label}: d2 is [${a.d2.rows}, ${Rd}], needs ${C} rows`);
  if (Rd % 2 !== 0 || Rd > WKV6_FUSED_MAX_RD) throw new ShapeError(`${label}: decay LoRA rank ${Rd} must be even and ≤ ${WKV6_FUSED_MAX_RD}`);
  needBytes(a.rkvgd, (4 * T * C + T * Rd) * 4, `${label}: rkvgd (4·${T}·${C} + ${T}·${Rd})`);
  needBytes(a.d2.buffer, C * Rd * 2, `${label}: d2 (${C}, ${Rd})`);
  needBytes(a.timeDecay, C * 4, `${label}: timeDecay (${C})`);
  needBytes(a.u, C * 4, `${label}: u (${H}, ${N})`);
  needBytes(a.lnWeight, C * 4, `${label}: lnWeight (${C})`);
  needBytes(a.lnBias, C * 4, `${label}: lnBias (${C})`);
  needBytes(a.state, C * N * 4, `${label}: state (${H}, ${N}, ${N})`);
  needBytes(a.o, T * C * 4, `${label}: o (${T}, ${C})`);
  for (const [name, b] of [['rkvgd', a.rkvgd], ['timeDecay', a.timeDecay], ['u', a.u], ['lnWeight', a.lnWeight], ['lnBias', a.lnBias], ['d2', a.d2.buffer]] as const) {
    if (b === a.o || b === a.state) throw new ShapeError(`${label}: ${name} must not alias o or state`);
  }
  if (a.o === a.state) throw new ShapeError(`${label}: o and state must be different buffers`);
  const params = new ArrayBuffer(32);
  const dv = new DataView(params);
  dv.setUint32(0, T, true);
  dv.setUint32(4, H, true);
  dv.setUint32(8, C, true);
  dv.setUint32(12, Rd, true);
  dv.setFloat32(16, eps, true);
  const uniform = createUniform(gpu, `${label}.dims`, new Uint8Array(params));
  return {
    kind: 'kernel',
    label,
    shader: SHADER,
    entry: 'wkv6_fused',
    defines: a.d2.dtype === 'f16' ? { W_F16: true } : undefined,
    overrides: { N },
    layout: ['uniform', 'read', 'read', 'read', 'read', 'read', 'read', 'rw', 'rw'],
    bindings: [uniform, a.rkvgd, a.d2.buffer, a.timeDecay, a.u, a.lnWeight, a.lnBias, a.state, a.o],
    workgroups: [H],
  };
}
