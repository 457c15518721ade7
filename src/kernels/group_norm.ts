/**
 * GroupNorm over heads with the ln_x affine, optionally gated (shaders/group_norm.wgsl):
 * out = (GN_H(y)·weight + bias) ⊙ g — RWKV-6 §3.3 step 8; without g for RWKV-7 §4.3 step 10.
 */
import type { Gpu } from '../engine/gpu';
import { createUniform } from '../engine/buffers';
import type { KernelOp } from '../engine/op';
import { ShapeError } from '../errors';
import { needBytes, needInt } from './types';
import code from '../../shaders/group_norm.wgsl?raw';

const SHADER = { name: 'group_norm', code };
/** GroupNorm eps of ln_x: 1e-5 · head_size_divisor² (divisor 8), the same for RWKV-6 and RWKV-7. */
export const GROUP_NORM_EPS = 64e-5;

export interface GroupNormArgs {
  /** (T, C) f32 WKV output, C = H·N. */
  y: GPUBuffer;
  /** (T, C) f32 gate, already SiLU'd. Omit for the ungated variant (RWKV-7). */
  g?: GPUBuffer;
  /** (C) f32 ln_x.weight. */
  weight: GPUBuffer;
  /** (C) f32 ln_x.bias. */
  bias: GPUBuffer;
  /** (T, C) f32; a different buffer from y and g. */
  out: GPUBuffer;
  T: number;
  H: number;
  /** Head size: a power of two ≤ 64. */
  N: number;
  /** Default 64e-5. */
  eps?: number;
  label?: string;
}

/**
 * One workgroup of N invocations per (head, token).
 *
 * @example
 * ops.push(groupNormOp(gpu, { y, g, weight: att.ln_x.weight, bias: att.ln_x.bias, out: o, T, H, N }));
 */
export function groupNormOp(gpu: Gpu, p: GroupNormArgs): KernelOp {
  const label = p.label ?? 'group_norm';
  const { T, H, N } = p;
  const eps = p.eps ?? GROUP_NORM_EPS;
  needInt(T, 1, `${label}: T`);
  needInt(H, 1, `${label}: H`);
  needInt(N, 2, `${label}: N`);
  if (N > 64 || (N & (N - 1)) !== 0) throw new ShapeError(`${label}: head size N = ${N} must be a power of two ≤ 64`);
  if (!(eps > 0)) throw new ShapeError(`${label}: eps must be > 0, got ${eps}`);
  const maxDim = gpu.limits.maxComputeWorkgroupsPerDimension;
  if (T > maxDim || H > maxDim) throw new ShapeError(`${label}: T = ${T} or H = ${H} exceeds the dispatch limit ${maxDim}`);
  const C = H * N;
  needBytes(p.y, T * C * 4, `${label}: y (${T}, ${C})`);
  needBytes(p.weight, C * 4, `${label}: weight (${C})`);
  needBytes(p.bias, C * 4, `${label}: bias (${C})`);
  needBytes(p.out, T * C * 4, `${label}: out (${T}, ${C})`);
  if (p.g) needBytes(p.g, T * C * 4, `${label}: g (${T}, ${C})`);
  if (p.out === p.y || p.out === p.g) throw new ShapeError(`${label}: out must not alias y or g`);

  const params = new ArrayBuffer(16);
  const dv = new DataView(params);
  dv.setUint32(0, T, true);
  dv.setUint32(4, H, true);
  dv.setUint32(8, C, true);
  dv.setFloat32(12, eps, true);
  const uniform = createUniform(gpu, `${label}.dims`, new Uint8Array(params));
  return {
    kind: 'kernel',
    label,
    shader: SHADER,
    entry: 'group_norm',
    defines: p.g ? { GATE: true } : undefined,
    overrides: { N },
    layout: p.g ? ['uniform', 'read', 'read', 'read', 'rw', 'read'] : ['uniform', 'read', 'read', 'read', 'rw'],
    bindings: p.g ? [uniform, p.y, p.weight, p.bias, p.out, p.g] : [uniform, p.y, p.weight, p.bias, p.out],
    workgroups: [H, T],
  };
}
