/**
 * RWKV-7 per-token preparation (shaders/rwkv7_prep.wgsl, spec §4.3 steps 4, 6–8): α = σ(a_logit), κ̂, k' and the value
 * residual. Two kernels, because the nine buffers exceed 8 storage bindings: `prep_k` (k → k', κ̂, α) and `prep_v`
 * (layer 0: v_first ← v; layers ≥ 1: v ← v + (v_first − v)⊙σ(v_gate)). They touch disjoint buffers, so order is free.
 */
import type { Gpu } from '../engine/gpu';
import { createUniform } from '../engine/buffers';
import type { KernelOp } from '../engine/op';
import { ShapeError } from '../errors';
import { grid2d, needBytes, needInt } from './types';
import code from '../../shaders/rwkv7_prep.wgsl?raw';

const SHADER = { name: 'rwkv7_prep', code };
/** Head channels per thread in prep_k (PER in the shader). */
const PER = 4;
/** Largest head size prep_k handles: PER · 256. */
export const RWKV7_PREP_MAX_N = PER * 256;
const V_WG = 256;

export interface Rwkv7PrepArgs {
  /** (T, C) f32, read-write: in k = x_k·W_kᵀ, out k' = k⊙(1 + (α − 1)⊙k_a). */
  k: GPUBuffer;
  /** (T, C) f32: a0 + (x_a·a1)·a2, not yet sigmoided. */
  aLogit: GPUBuffer;
  /** (T, C) f32, read-write: in v = x_v·W_vᵀ; layers ≥ 1: out the value-residual mix. */
  v: GPUBuffer;
  /** (T, C) f32: layer 0 writes v here; layers ≥ 1 read it (layer 0's v of the same rows). */
  vFirst: GPUBuffer;
  /** (T, C) f32 logit v0 + (x_v·v1)·v2; required on layers ≥ 1, must be omitted on layer 0. */
  vGate?: GPUBuffer;
  /** (C) f32 `att.k_k`. */
  kk_scale: GPUBuffer;
  /** (C) f32 `att.k_a`. */
  ka: GPUBuffer;
  /** (T, C) f32 out: κ̂ = per-head L2-normalised k⊙k_k (from the unmodified k). */
  kk: GPUBuffer;
  /** (T, C) f32 out: α = σ(aLogit). */
  alpha: GPUBuffer;
  layer0: boolean;
  T: number;
  H: number;
  N: number;
  label?: string;
}

/**
 * Two kernel ops: [prep_k, prep_v].
 *
 * @example
 * ops.push(...rwkv7PrepOp(gpu, { k: s.k, aLogit: s.a, v: s.v, vFirst: s.vFirst, vGate: i ? s.vg : undefined,
 *   kk_scale: att.k_k, ka: att.k_a, kk: s.kk, alpha: s.alpha, layer0: i === 0, T, H, N, label: `L${i}.att.prep` }));
 */
export function rwkv7PrepOp(gpu: Gpu, a: Rwkv7PrepArgs): KernelOp[] {
  const label = a.label ?? 'rwkv7_prep';
  const { T, H, N } = a;
  needInt(T, 1, `${label}: T`);
  needInt(H, 1, `${label}: H`);
  needInt(N, 1, `${label}: N`);
  if (N > RWKV7_PREP_MAX_N) throw new ShapeError(`${label}: head size N = ${N} exceeds ${RWKV7_PREP_MAX_N}`);
  const C = H * N;
  const tc = T * C * 4;
  if (a.layer0 && a.vGate) throw new ShapeError(`${label}: layer 0 has no value residual; omit vGate`);
  if (!a.layer0 && !a.vGate) throw new ShapeError(`${label}: layers ≥ 1 need vGate (v0 + (x_v·v1)·v2)`);
  for (const [name, b] of [['k', a.k], ['aLogit', a.aLogit], ['v', a.v], ['vFirst', a.vFirst], ['kk', a.kk], ['alpha', a.alpha]] as const) {
    needBytes(b, tc, `${label}: ${name} (${T}, ${C})`);
  }
  if (a.vGate) needBytes(a.vGate, tc, `${label}: vGate (${T}, ${C})`);
  needBytes(a.kk_scale, C * 4, `${label}: kk_scale (${C})`);
  needBytes(a.ka, C * 4, `${label}: ka (${C})`);
  noAlias(label, { k: a.k, kk: a.kk, alpha: a.alpha }, { aLogit: a.aLogit, kk_scale: a.kk_scale, ka: a.ka });
  noAlias(label, a.layer0 ? { vFirst: a.vFirst } : { v: a.v }, a.layer0 ? { v: a.v } : { vFirst: a.vFirst, vGate: a.vGate! });

  const params = new Uint32Array([T, H, T * C, 0]);
  const uniform = createUniform(gpu, `${label}.params`, params);
  const maxDim = gpu.limits.maxComputeWorkgroupsPerDimension;
  const wg = Math.min(256, nextPow2(N));
  const prepK: KernelOp = {
    kind: 'kernel',
    label: `${label}.k`,
    shader: SHADER,
    entry: 'prep_k',
    overrides: { N, WG: wg },
    layout: ['rw', 'read', 'read', 'read', 'rw', 'rw', 'uniform'],
    bindings: [a.k, a.aLogit, a.kk_scale, a.ka, a.kk, a.alpha, uniform],
    workgroups: grid2d(T * H, maxDim),
  };
  const vGroups = grid2d(Math.ceil((T * C) / V_WG), maxDim);
  const prepV: KernelOp = a.layer0
    ? {
        kind: 'kernel',
        label: `${label}.v_first`,
        shader: SHADER,
        entry: 'prep_v',
        defines: { PREP_V: true, LAYER0: true },
        layout: ['read', 'rw', 'uniform'],
        bindings: [a.v, a.vFirst, uniform],
        workgroups: vGroups,
      }
    : {
        kind: 'kernel',
        label: `${label}.v_mix`,
        shader: SHADER,
        entry: 'prep_v',
        defines: { PREP_V: true },
        layout: ['rw', 'read', 'read', 'uniform'],
        bindings: [a.v, a.vFirst, a.vGate!, uniform],
        workgroups: vGroups,
      };
  return [prepK, prepV];
}

/** Throw ShapeError if a written buffer is also bound elsewhere in the same kernel (WebGPU forbids the aliasing). */
function noAlias(label: string, written: Record<string, GPUBuffer>, read: Record<string, GPUBuffer>): void {
  const all = [...Object.entries(written), ...Object.entries(read)];
  for (const [name, b] of Object.entries(written)) {
    const other = all.find(([n, o]) => n !== name && o === b);
    if (other) throw new ShapeError(`${label}: ${name} and ${other[0]} must be different buffers (${name} is written)`);
  }
}

function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}
