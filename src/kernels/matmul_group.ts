/**
 * Several Linear layers in one dispatch (shaders/matmul_group.wgsl): one 16-bit matrix whose rows are the stacked
 * weights of up to 8 layers ("blocks"); block b reads its own row block of x, applies its own epilogue and writes
 * its own (T, N_b) output region. RWKV-6 uses it for r, k, v, g, and the decay LoRA down-projection (one dispatch
 * instead of five) and for the channel-mix key and receptance.
 */
import type { Gpu } from '../engine/gpu';
import { createStorage, createUniform } from '../engine/buffers';
import type { KernelOp } from '../engine/op';
import type { Defines } from '../engine/wgsl';
import { ShapeError, UnsupportedDtypeError } from '../errors';
import { grid2d, needBytes, needInt, type GpuMatrix } from './types';
import code from '../../shaders/matmul_group.wgsl?raw';

const SHADER = { name: 'matmul_group', code };

/** Epilogues a block may use (codes as in the shader header). */
export type GroupEpilogue = 'none' | 'tanh' | 'relu2' | 'sigmoid' | 'silu';
const EPI_CODE: Record<GroupEpilogue, number> = { none: 0, tanh: 1, relu2: 2, sigmoid: 3, silu: 4 };

/** Most blocks per dispatch (the shader's MAX_BLOCKS). */
export const MATMUL_GROUP_MAX_BLOCKS = 8;
/** Most distinct output buffers (bindings y0…y4): with x and W that is 7 storage bindings. */
export const MATMUL_GROUP_MAX_OUTPUTS = 5;
/** 'auto' uses the vec kernel up to this T (as matmul's VEC_AUTO_MAX_T). */
export const MATMUL_GROUP_VEC_MAX_T = 16;
/** Output features per mat tile; token rows per tile are the smallest of MAT_TILE_ROWS holding T (as matmul). */
const TILE = 64;
const MAT_TILE_ROWS = [16, 32, 64] as const;
const VEC_WG = 256;
/** Output rows a vec lane works on at once (the shader's row group). */
const VEC_GROUP = 4;

export interface MatmulGroupBlock {
  /** Output features of this block: the next `rows` rows of W (blocks follow each other in W). */
  rows: number;
  /** x rows this block reads: xRowOffset + branch·T + t (e.g. the ddlerp branch index). */
  branch: number;
  epilogue?: GroupEpilogue;
  /** (outOffset + T·rows) f32 output; may be shared with other blocks (disjoint regions). Must not be x. */
  out: GPUBuffer;
  /** First element of this block's (T, rows) region in `out` (default 0). */
  outOffset?: number;
  /** For labels. */
  name?: string;
}

export interface MatmulGroupArgs {
  /** (xRowOffset + (max branch + 1)·T, K) f32. */
  x: GPUBuffer;
  /** (Σ rows, K) 16-bit: the blocks' weights stacked (see concatRows). */
  w: GpuMatrix;
  blocks: readonly MatmulGroupBlock[];
  T: number;
  /** Row of x that branch 0 starts at (default 0). */
  xRowOffset?: number;
  /** 'auto' (default): 'vec' for T ≤ 16, else 'mat'. */
  variant?: 'auto' | 'vec' | 'mat';
  /** vec reduction (default 'subgroup' when the device has subgroups), as in matmul. */
  vecReduce?: 'subgroup' | 'workgroup';
  label?: string;
}

/**
 * Build the op.
 *
 * @example
 * // r, k, v, g (silu) and the decay LoRA down (tanh) from the five ddlerp branches w,k,v,r,g of s.xb:
 * matmulGroupOp(gpu, { x: s.xb, w: att.rkvg_w1, T, blocks: [
 *   { rows: C, branch: 3, out: s.r }, { rows: C, branch: 1, out: s.k }, { rows: C, branch: 2, out: s.v },
 *   { rows: C, branch: 4, epilogue: 'silu', out: s.g }, { rows: Rd, branch: 0, epilogue: 'tanh', out: s.dh }] });
 */
export function matmulGroupOp(gpu: Gpu, a: MatmulGroupArgs): KernelOp {
  const label = a.label ?? `matmul_group(${a.w.label})`;
  const { T, w, blocks } = a;
  const K = w.cols;
  const xOff = a.xRowOffset ?? 0;
  needInt(T, 1, `${label}: T`);
  needInt(xOff, 0, `${label}: xRowOffset`);
  if (blocks.length < 1 || blocks.length > MATMUL_GROUP_MAX_BLOCKS) {
    throw new ShapeError(`${label}: ${blocks.length} blocks (1…${MATMUL_GROUP_MAX_BLOCKS} allowed)`);
  }
  if (K % 2 !== 0 || K < 2) throw new ShapeError(`${label}: weight [${w.rows}, ${K}] needs an even K`);
  needBytes(w.buffer, w.rows * K * 2, `${label}: w (${w.rows}, ${K})`);
  if (w.rows * K * 2 > gpu.limits.maxStorageBufferBindingSize) {
    throw new ShapeError(`${label}: w (${w.rows}, ${K}) is larger than the device's largest storage binding (${gpu.limits.maxStorageBufferBindingSize} B)`);
  }
  const maxDim = gpu.limits.maxComputeWorkgroupsPerDimension;
  const slots: GPUBuffer[] = [];
  const regions = new Map<GPUBuffer, [number, number, string][]>();
  const table = new Uint32Array(4 + 8 * MATMUL_GROUP_MAX_BLOCKS);
  let n0 = 0;
  let tiles = 0;
  let groups = 0;
  let maxBranch = 0;
  blocks.forEach((b, i) => {
    const name = `${label}: block ${i}${b.name ? ` (${b.name})` : ''}`;
    needInt(b.rows, 1, `${name} rows`);
    needInt(b.branch, 0, `${name} branch`);
    const off = b.outOffset ?? 0;
    needInt(off, 0, `${name} outOffset`);
    const epi = b.epilogue ?? 'none';
    if (!(epi in EPI_CODE)) throw new ShapeError(`${name}: unknown epilogue '${epi}'`);
    if (b.out === a.x) throw new ShapeError(`${name}: out must not be the x buffer`);
    needBytes(b.out, (off + T * b.rows) * 4, `${name} out (${off} + ${T}·${b.rows})`);
    let slot = slots.indexOf(b.out);
    if (slot < 0) {
      slot = slots.length;
      slots.push(b.out);
    }
    const rs = regions.get(b.out) ?? [];
    for (const [s, e, other] of rs) {
      if (off < e && s < off + T * b.rows) throw new ShapeError(`${name}: its output region overlaps ${other}`);
    }
    rs.push([off, off + T * b.rows, name]);
    regions.set(b.out, rs);
    maxBranch = Math.max(maxBranch, b.branch);
    table.set([n0, b.rows, xOff + b.branch * T, EPI_CODE[epi], slot, off, tiles, groups], 4 + 8 * i);
    n0 += b.rows;
    tiles += Math.ceil(b.rows / TILE);
    groups += Math.ceil(b.rows / VEC_GROUP);
  });
  if (slots.length > MATMUL_GROUP_MAX_OUTPUTS) throw new ShapeError(`${label}: ${slots.length} output buffers (≤ ${MATMUL_GROUP_MAX_OUTPUTS})`);
  if (n0 !== w.rows) throw new ShapeError(`${label}: blocks cover ${n0} rows, w has ${w.rows}`);
  needBytes(a.x, (xOff + (maxBranch + 1) * T) * K * 4, `${label}: x (${xOff} + ${maxBranch + 1}·${T}, ${K})`);
  table.set([T, K, blocks.length, n0], 0);

  const variant = a.variant === 'vec' || a.variant === 'mat' ? a.variant : T <= MATMUL_GROUP_VEC_MAX_T ? 'vec' : 'mat';
  const defines: Defines = {};
  if (w.dtype === 'f16') defines.W_F16 = true;
  for (let s = 1; s < slots.length; s++) defines[`Y${s}`] = true;
  const uniform = createUniform(gpu, `${label}.params`, table);
  const layout: ('read' | 'rw' | 'uniform')[] = ['uniform', 'read', 'read', ...slots.map(() => 'rw' as const)];
  const bindings: GPUBuffer[] = [uniform, a.x, w.buffer, ...slots];

  const vec8 = K % 8 === 0;
  if (vec8) defines.VEC8 = true;

  if (variant === 'mat') {
    defines.MAT = true;
    const bm = MAT_TILE_ROWS.find((r) => T <= r) ?? 64;
    const gy = Math.ceil(T / bm);
    if (tiles > maxDim || gy > maxDim) throw new ShapeError(`${label}: T = ${T}, ${n0} rows exceed the tiled grid`);
    return { kind: 'kernel', label, shader: SHADER, entry: 'matmul_group_mat', defines, overrides: { BM: bm }, layout, bindings, workgroups: [tiles, gy] };
  }

  const chunks = K / (vec8 ? 8 : 2);
  const tt = T === 1 ? 1 : T === 2 ? 2 : 4;
  if (tt === 2) defines.TT2 = true;
  if (tt === 4) defines.TT4 = true;
  const reduce = a.vecReduce ?? (gpu.features.subgroups ? 'subgroup' : 'workgroup');
  if (reduce === 'subgroup' && !gpu.features.subgroups) throw new ShapeError(`${label}: vecReduce 'subgroup' needs the subgroups feature`);
  let overrides: Record<string, number>;
  let groupsPerWg: number;
  if (reduce === 'subgroup') {
    defines.SUBGROUP = true;
    const wg = 128;
    groupsPerWg = Math.max(1, Math.floor(wg / subgroupMinSize(gpu))); // one row group per subgroup
    overrides = { WG: wg, GROUPS: groupsPerWg };
  } else {
    // ~4 loads per thread before the reduction; 4…64 threads per row group (as matmul).
    const tpr = Math.min(64, VEC_WG, Math.max(4, nextPow2(Math.ceil(chunks / 4))));
    groupsPerWg = VEC_WG / tpr;
    overrides = { WG: VEC_WG, TPR: tpr };
  }
  const [gx, gy] = grid2d(Math.ceil(groups / groupsPerWg), maxDim);
  const gz = Math.ceil(T / tt);
  if (gz > maxDim) throw new ShapeError(`${label}: T = ${T} is too large for the vec kernel`);
  return { kind: 'kernel', label, shader: SHADER, entry: 'matmul_group_vec', defines, overrides, layout, bindings, workgroups: [gx, gy, gz] };
}

/**
 * Stack matrices with the same column count and dtype into one [Σ rows, cols] matrix (GPU-side copies, one command
 * buffer); the parts are destroyed. Throws UnsupportedDtypeError if the parts mix bf16 and f16.
 *
 * @example
 * const rkvg = concatRows(gpu, 'blocks.0.att.rkvg_w1', [att.receptance, att.key, att.value, att.gate, att.time_decay_w1]);
 */
export function concatRows(gpu: Gpu, label: string, parts: readonly GpuMatrix[]): GpuMatrix {
  if (parts.length === 0) throw new ShapeError(`${label}: nothing to concatenate`);
  const cols = parts[0]!.cols;
  const dtype = parts[0]!.dtype;
  for (const m of parts) {
    if (m.cols !== cols) throw new ShapeError(`${label}: ${m.label} has ${m.cols} columns, ${parts[0]!.label} has ${cols}`);
    if (m.dtype !== dtype) {
      throw new UnsupportedDtypeError(`${label}: ${m.label} is ${m.dtype} but ${parts[0]!.label} is ${dtype}; these Linear weights must share one 16-bit dtype`);
    }
  }
  const rows = parts.reduce((n, m) => n + m.rows, 0);
  const buffer = createStorage(gpu, label, rows * cols * 2);
  const enc = gpu.device.createCommandEncoder({ label: `${label}.concat` });
  let off = 0;
  for (const m of parts) {
    const n = m.rows * cols * 2; // a multiple of 4: cols is even
    enc.copyBufferToBuffer(m.buffer, 0, buffer, off, n);
    off += n;
  }
  gpu.device.queue.submit([enc.finish()]);
  for (const m of parts) m.buffer.destroy();
  return { buffer, rows, cols, dtype, label };
}

/** Smallest subgroup size the device may use (GPUAdapterInfo.subgroupMinSize; 32 when not reported). */
function subgroupMinSize(gpu: Gpu): number {
  const info = (gpu.device as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo;
  const s = info?.subgroupMinSize;
  return typeof s === 'number' && s >= 1 ? s : 32;
}

function nextPow2(n: number): number {
  let q = 1;
  while (q < n) q *= 2;
  return q;
}
