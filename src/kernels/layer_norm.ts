/**
 * LayerNorm over rows (shaders/layer_norm.wgsl): y[t] = LN(x[rowOffset + t]; weight, bias), biased variance.
 */
import type { Gpu } from '../engine/gpu';
import { createUniform } from '../engine/buffers';
import type { KernelOp } from '../engine/op';
import { ShapeError } from '../errors';
import { grid2d, needBytes, needInt } from './types';
import code from '../../shaders/layer_norm.wgsl?raw';

const SHADER = { name: 'layer_norm', code };
/** Vec2 pairs each thread keeps in registers (PAIRS in the shader). */
const PAIRS = 8;
const MAX_WG = 256;
/** Largest C the kernel handles: 2 · PAIRS · 256. */
export const LAYER_NORM_MAX_C = 2 * PAIRS * MAX_WG;

export interface LayerNormArgs {
  /** (rowOffset + T, C) f32 input. */
  x: GPUBuffer;
  /** (T, C) f32 output; must be a different buffer from x. */
  y: GPUBuffer;
  /** (C) f32. */
  weight: GPUBuffer;
  /** (C) f32. */
  bias: GPUBuffer;
  T: number;
  C: number;
  /** Default 1e-5 (spec §3). */
  eps?: number;
  /** First row of x to read (default 0): y row t = LN(x row rowOffset + t). */
  rowOffset?: number;
  label?: string;
}

/**
 * One workgroup per row; threads per workgroup scale with C (32…256).
 *
 * @example
 * ops.push(layerNormOp(gpu, { x: s.x, y: s.lnOut, weight, bias, T: 1, C, rowOffset: T - 1, label: 'ln_out' }));
 */
export function layerNormOp(gpu: Gpu, a: LayerNormArgs): KernelOp {
  const label = a.label ?? 'layer_norm';
  const { T, C } = a;
  const rowOffset = a.rowOffset ?? 0;
  const eps = a.eps ?? 1e-5;
  needInt(T, 1, `${label}: T`);
  needInt(C, 2, `${label}: C`);
  needInt(rowOffset, 0, `${label}: rowOffset`);
  if (C % 2 !== 0 || C > LAYER_NORM_MAX_C) throw new ShapeError(`${label}: C = ${C} must be even and ≤ ${LAYER_NORM_MAX_C}`);
  if (!(eps > 0)) throw new ShapeError(`${label}: eps must be > 0, got ${eps}`);
  if (a.x === a.y) throw new ShapeError(`${label}: x and y must be different buffers`);
  needBytes(a.x, (rowOffset + T) * C * 4, `${label}: x (${rowOffset} + ${T}, ${C})`);
  needBytes(a.y, T * C * 4, `${label}: y (${T}, ${C})`);
  needBytes(a.weight, C * 4, `${label}: weight (${C})`);
  needBytes(a.bias, C * 4, `${label}: bias (${C})`);

  // ~4 pairs per thread when C is small, up to PAIRS at C = 4096.
  const wg = Math.min(MAX_WG, Math.max(32, nextPow2(Math.ceil(C / 2 / 4))));
  const params = new ArrayBuffer(16);
  const dv = new DataView(params);
  dv.setUint32(0, T, true);
  dv.setUint32(4, C, true);
  dv.setUint32(8, rowOffset, true);
  dv.setFloat32(12, eps, true);
  const uniform = createUniform(gpu, `${label}.params`, new Uint8Array(params));
  return {
    kind: 'kernel',
    label,
    shader: SHADER,
    entry: 'layer_norm',
    overrides: { WG: wg },
    layout: ['read', 'rw', 'read', 'read', 'uniform'],
    bindings: [a.x, a.y, a.weight, a.bias, uniform],
    workgroups: grid2d(T, gpu.limits.maxComputeWorkgroupsPerDimension),
  };
}

function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}
