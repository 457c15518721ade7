/**
 * RWKV-7 time-mix output before W_o (shaders/rwkv7_out.wgsl, spec §4.3 steps 10–12):
 *   out = (GN_H(y)·weight + bias + (Σ_{j∈head} r_j·k'_j·r_k[h][j])·v_head) ⊙ g,
 * GroupNorm with one group per head, biased variance, eps 64e-5.
 *
 * The kernel works in place on its first binding (y, r, k', v, r_k, g, weight, bias already use 8 storage
 * bindings). Pass `out: y` to get one kernel; with a distinct `out` a buffer copy y → out comes first.
 */
import type { Gpu } from '../engine/gpu';
import { createUniform } from '../engine/buffers';
import { copyOp, type KernelOp, type Op } from '../engine/op';
import { ShapeError } from '../errors';
import { grid2d, needBytes, needInt } from './types';
import code from '../../shaders/rwkv7_out.wgsl?raw';

const SHADER = { name: 'rwkv7_out', code };
/** Head channels per thread (PER in the shader). */
const PER = 4;
/** Largest head size: PER · 256. */
export const RWKV7_OUT_MAX_N = PER * 256;
/** GroupNorm epsilon of ln_x: 1e-5 · head_size_divisor², divisor 8. */
export const RWKV7_GN_EPS = 64e-5;

export interface Rwkv7OutArgs {
  /** (T, C) f32 wkv output; overwritten when out === y. */
  y: GPUBuffer;
  /** (T, C) f32 receptance. */
  r: GPUBuffer;
  /** (T, C) f32 k'. */
  k: GPUBuffer;
  /** (T, C) f32 value (after the value residual). */
  v: GPUBuffer;
  /** (H, N) f32 `att.r_k`. */
  rk: GPUBuffer;
  /** (T, C) f32 gate σ(x_g·g1)·g2. */
  g: GPUBuffer;
  /** (C) f32 `att.ln_x.weight`. */
  weight: GPUBuffer;
  /** (C) f32 `att.ln_x.bias`. */
  bias: GPUBuffer;
  /** (T, C) f32 out; pass y itself to skip the copy. */
  out: GPUBuffer;
  T: number;
  H: number;
  N: number;
  /** Default 64e-5. */
  eps?: number;
  label?: string;
}

/**
 * [kernel] when out === y, else [copy y → out, kernel on out].
 *
 * @example
 * ops.push(...rwkv7OutOp(gpu, { y: s.y, r: s.r, k: s.k, v: s.v, rk: att.r_k, g: s.g, weight: att.ln_x.weight,
 *   bias: att.ln_x.bias, out: s.y, T, H, N, label: `L${i}.att.ln_x` }));
 */
export function rwkv7OutOp(gpu: Gpu, a: Rwkv7OutArgs): Op[] {
  const label = a.label ?? 'rwkv7_out';
  const { T, H, N } = a;
  const eps = a.eps ?? RWKV7_GN_EPS;
  needInt(T, 1, `${label}: T`);
  needInt(H, 1, `${label}: H`);
  needInt(N, 1, `${label}: N`);
  if (N > RWKV7_OUT_MAX_N) throw new ShapeError(`${label}: head size N = ${N} exceeds ${RWKV7_OUT_MAX_N}`);
  if (!(eps > 0)) throw new ShapeError(`${label}: eps must be > 0, got ${eps}`);
  const C = H * N;
  const tc = T * C * 4;
  for (const [name, b] of [['y', a.y], ['r', a.r], ['k', a.k], ['v', a.v], ['g', a.g], ['out', a.out]] as const) {
    needBytes(b, tc, `${label}: ${name} (${T}, ${C})`);
  }
  needBytes(a.rk, C * 4, `${label}: rk (${H}, ${N})`);
  needBytes(a.weight, C * 4, `${label}: weight (${C})`);
  needBytes(a.bias, C * 4, `${label}: bias (${C})`);
  const read = { r: a.r, k: a.k, v: a.v, rk: a.rk, g: a.g, weight: a.weight, bias: a.bias };
  for (const [name, b] of Object.entries(read)) {
    if (b === a.out) throw new ShapeError(`${label}: out and ${name} must be different buffers (out is written)`);
    if (b === a.y) throw new ShapeError(`${label}: y and ${name} must be different buffers`);
  }

  const params = new ArrayBuffer(16);
  const dv = new DataView(params);
  dv.setUint32(0, T, true);
  dv.setUint32(4, H, true);
  dv.setFloat32(8, eps, true);
  const uniform = createUniform(gpu, `${label}.params`, new Uint8Array(params));
  const kernel: KernelOp = {
    kind: 'kernel',
    label,
    shader: SHADER,
    entry: 'rwkv7_out',
    overrides: { N, WG: Math.min(256, nextPow2(N)) },
    layout: ['rw', 'read', 'read', 'read', 'read', 'read', 'read', 'read', 'uniform'],
    bindings: [a.out, a.r, a.k, a.v, a.rk, a.g, a.weight, a.bias, uniform],
    workgroups: grid2d(T * H, gpu.limits.maxComputeWorkgroupsPerDimension),
  };
  return a.out === a.y ? [kernel] : [copyOp(`${label}.copy_y`, a.y, 0, a.out, 0, tc), kernel];
}

function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}
