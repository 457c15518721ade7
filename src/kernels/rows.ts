/**
 * Row helpers on (rows, C) f32 buffers (shaders/rows.wgsl): embedding lookup and in-place row reversal.
 */
import type { Gpu } from '../engine/gpu';
import { createUniform } from '../engine/buffers';
import type { KernelOp } from '../engine/op';
import { ShapeError } from '../errors';
import { grid2d, needBytes, needInt, type GpuMatrix } from './types';
import code from '../../shaders/rows.wgsl?raw';

const SHADER = { name: 'rows', code };
const WG = 256;

export interface EmbedArgs {
  /** (T) i32 token ids; rows with a negative id are left untouched, ids ≥ V give zero rows. */
  ids: GPUBuffer;
  /** (V, C) 16-bit — or, for an embedding split into row blocks, the block holding ids [row0, row0 + emb.rows). */
  emb: GpuMatrix;
  /** (T, C) f32. */
  x: GPUBuffer;
  T: number;
  /** Vocabulary id of the block's first row (default 0: the whole embedding). */
  row0?: number;
  /** Whether this is the last block, which writes the zero rows of ids past the vocabulary (default true). */
  last?: boolean;
  label?: string;
}

/**
 * x[t] = emb[ids[t]] widened to f32, except rows whose id is negative (image rows already written there).
 * A split embedding takes one op per block (`row0`, `last` on the final one); together they write every row once.
 *
 * @example
 * ops.push(embedOp(gpu, { ids: s.ids, emb: w.emb, x: s.xin, T, label: 'emb' }));
 * // split: blocks.map((b, i) => embedOp(gpu, { ids, emb: b.m, row0: b.row0, last: i === blocks.length - 1, x, T }))
 */
export function embedOp(gpu: Gpu, a: EmbedArgs): KernelOp {
  const label = a.label ?? 'embed';
  const { T } = a;
  const V = a.emb.rows;
  const C = a.emb.cols;
  needInt(T, 1, `${label}: T`);
  if (C % 2 !== 0) throw new ShapeError(`${label}: C = ${C} must be even`);
  needBytes(a.ids, T * 4, `${label}: ids (${T})`);
  needBytes(a.emb.buffer, V * C * 2, `${label}: emb (${V}, ${C})`);
  needBytes(a.x, T * C * 4, `${label}: x (${T}, ${C})`);
  const row0 = a.row0 ?? 0;
  needInt(row0, 0, `${label}: row0`);
  const uniform = createUniform(gpu, `${label}.params`, new Uint32Array([T, C, V, row0, a.last === false ? 0 : 1, 0, 0, 0]));
  return {
    kind: 'kernel',
    label,
    shader: SHADER,
    entry: 'embed',
    defines: a.emb.dtype === 'f16' ? { W_F16: true } : undefined,
    overrides: { WG },
    layout: ['read', 'read', 'rw', 'uniform'],
    bindings: [a.ids, a.emb.buffer, a.x, uniform],
    workgroups: grid2d(Math.ceil((T * C) / 2 / WG), gpu.limits.maxComputeWorkgroupsPerDimension),
  };
}

export interface ReverseRowsArgs {
  /** (≥ start + count, C) f32, modified in place. */
  x: GPUBuffer;
  start: number;
  count: number;
  C: number;
  label?: string;
}

/**
 * Reverse rows [start, start + count) of x in place (bidirectional image scan, spec §8). count 0 or 1 is a no-op
 * (the op dispatches no workgroups).
 *
 * @example
 * ops.push(reverseRowsOp(gpu, { x: s.x, start: 0, count: 576, C, label: 'L1.reverse' }));
 */
export function reverseRowsOp(gpu: Gpu, a: ReverseRowsArgs): KernelOp {
  const label = a.label ?? 'reverse_rows';
  const { start, count, C } = a;
  needInt(start, 0, `${label}: start`);
  needInt(count, 0, `${label}: count`);
  needInt(C, 2, `${label}: C`);
  if (C % 2 !== 0) throw new ShapeError(`${label}: C = ${C} must be even`);
  needBytes(a.x, (start + count) * C * 4, `${label}: x (${start} + ${count}, ${C})`);
  const uniform = createUniform(gpu, `${label}.params`, new Uint32Array([start, count, C, 0]));
  const threads = Math.floor(count / 2) * (C / 2);
  return {
    kind: 'kernel',
    label,
    shader: SHADER,
    entry: 'reverse_rows',
    defines: { REVERSE: true },
    overrides: { WG },
    layout: ['rw', 'uniform'],
    bindings: [a.x, uniform],
    workgroups: threads === 0 ? [0] : grid2d(Math.ceil(threads / WG), gpu.limits.maxComputeWorkgroupsPerDimension),
  };
}
