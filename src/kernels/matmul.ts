/**
 * y = epi(x · wᵀ) with 16-bit weights (shaders/matmul.wgsl): a matrix–vector kernel for decode ('vec') and a tiled
 * matrix–matrix kernel for prefill ('mat').
 */
import type { Gpu } from '../engine/gpu';
import { createUniform } from '../engine/buffers';
import type { KernelOp } from '../engine/op';
import type { Defines } from '../engine/wgsl';
import { ShapeError } from '../errors';
import { grid2d, needBytes, needInt, type GpuMatrix } from './types';
import code from '../../shaders/matmul.wgsl?raw';

const SHADER = { name: 'matmul', code };

/**
 * What happens to z = x·wᵀ before it lands in y:
 * 'none' y = z · 'tanh' y = tanh z · 'relu2' y = relu(z)² · 'sigmoid' y = σ(z) · 'silu' y = z·σ(z) ·
 * 'add' y += z (residual) · 'bias' y = z + bias · 'mul_add' y += m ⊙ z.
 */
export type Epilogue = 'none' | 'tanh' | 'relu2' | 'sigmoid' | 'silu' | 'add' | 'bias' | 'mul_add';
export const EPILOGUES: readonly Epilogue[] = ['none', 'tanh', 'relu2', 'sigmoid', 'silu', 'add', 'bias', 'mul_add'];

export interface MatmulArgs {
  /** (xRowOffset + T, K) f32. */
  x: GPUBuffer;
  /** (N, K) 16-bit. */
  w: GpuMatrix;
  /** (T, N) f32; read as well for 'add' / 'mul_add'. Must differ from x, bias and m. */
  y: GPUBuffer;
  T: number;
  epilogue?: Epilogue;
  /** (N) f32, for 'bias'. */
  bias?: GPUBuffer;
  /** (T, N) f32, for 'mul_add'. */
  m?: GPUBuffer;
  /** x rows start at this row (default 0). */
  xRowOffset?: number;
  /** 'auto' (default): 'vec' for T ≤ VEC_AUTO_MAX_T (16), else 'mat'. */
  variant?: 'auto' | 'vec' | 'mat';
  label?: string;
  /**
   * vec tuning (benchmarks): 'subgroup' (default when the device has subgroups) — one subgroup per group of 4 output
   * rows, subgroupAdd; 'workgroup' — vecThreadsPerRow threads per group of 4 rows and a shared-memory tree.
   */
  vecReduce?: 'subgroup' | 'workgroup';
  /** vec tuning: threads per workgroup, a power of two ≤ 256 (default 128 subgroup path, 256 workgroup path). */
  vecWorkgroupSize?: number;
  /** vec 'workgroup' tuning: threads sharing one group of 4 output rows, a power of two ≤ vecWorkgroupSize (default from K). */
  vecThreadsPerRow?: number;
  /** vec 'subgroup' tuning: output rows per workgroup (default: one group of 4 rows per subgroup of the smallest size). */
  vecRowsPerWorkgroup?: number;
  /** mat tuning: token rows per output tile, 16, 32 or 64 (default: the smallest that holds T, at most 64). */
  matTileRows?: 16 | 32 | 64;
}

/** Token rows the vec kernel handles in one pass over W (larger T re-reads W once per tile of 4). */
export const VEC_MAX_T_TILE = 4;
/**
 * 'auto' uses the vec kernel up to this T. Up to 4 passes over W (the later ones mostly from cache) still beat the
 * tiled kernel there: on a GPU a 16-row tile leaves only N / 64 workgroups (a dozen for N = 768) against N / ROWS
 * for vec, and on SwiftShader vec measured 1.7–3× faster than the 16-row tile at T = 16…8 (bench/matmul.ts).
 */
export const VEC_AUTO_MAX_T = 16;
const VEC_WG = 256;
/** Output rows a vec lane works on at once (the shader's row group). */
const VEC_GROUP = 4;
/** Output features per mat tile (token rows per tile: matTileRows). */
const MAT_TILE_N = 64;
const MAT_TILE_ROWS = [16, 32, 64] as const;

/** Floating point operations of a T×K by K×N product. */
export function matmulFlops(T: number, N: number, K: number): number {
  return 2 * T * N * K;
}

/** Bytes a matmul must move at least: 16-bit W once, x read, y written (read too for add epilogues). */
export function matmulBytes(T: number, N: number, K: number, epilogue: Epilogue = 'none'): number {
  const yReads = epilogue === 'add' ? 1 : epilogue === 'mul_add' ? 2 : 0;
  return N * K * 2 + T * K * 4 + T * N * 4 * (1 + yReads);
}

/**
 * Build the op for y = epi(x · wᵀ).
 *
 * @example
 * ops.push(matmulOp(gpu, { x: s.o, w: att.output, y: s.x, T, epilogue: 'add', label: 'L0.att.output' }));
 */
export function matmulOp(gpu: Gpu, a: MatmulArgs): KernelOp {
  const label = a.label ?? `matmul(${a.w.label})`;
  const { T, w } = a;
  const N = w.rows;
  const K = w.cols;
  const xOff = a.xRowOffset ?? 0;
  const epi = a.epilogue ?? 'none';
  needInt(T, 1, `${label}: T`);
  needInt(xOff, 0, `${label}: xRowOffset`);
  if (!EPILOGUES.includes(epi)) throw new ShapeError(`${label}: unknown epilogue '${epi}'`);
  if (K % 2 !== 0 || K < 2 || N < 1) throw new ShapeError(`${label}: weight [${N}, ${K}] needs N ≥ 1 and an even K`);
  needBytes(w.buffer, N * K * 2, `${label}: w (${N}, ${K})`);
  needBytes(a.x, (xOff + T) * K * 4, `${label}: x (${xOff} + ${T}, ${K})`);
  needBytes(a.y, T * N * 4, `${label}: y (${T}, ${N})`);
  if (a.y === a.x) throw new ShapeError(`${label}: y must not be the x buffer`);
  let aux: GPUBuffer | undefined;
  if (epi === 'bias') {
    if (!a.bias) throw new ShapeError(`${label}: epilogue 'bias' needs a bias buffer`);
    needBytes(a.bias, N * 4, `${label}: bias (${N})`);
    aux = a.bias;
  } else if (epi === 'mul_add') {
    if (!a.m) throw new ShapeError(`${label}: epilogue 'mul_add' needs an m buffer`);
    needBytes(a.m, T * N * 4, `${label}: m (${T}, ${N})`);
    aux = a.m;
  }
  if (aux === a.y) throw new ShapeError(`${label}: y must not be the ${epi === 'bias' ? 'bias' : 'm'} buffer`);

  const variant = a.variant === 'vec' || a.variant === 'mat' ? a.variant : T <= VEC_AUTO_MAX_T ? 'vec' : 'mat';
  const defines: Defines = { EPI: `epi_${epi}` };
  if (w.dtype === 'f16') defines.W_F16 = true;
  if (aux) defines.HAS_AUX = true;
  const uniform = createUniform(gpu, `${label}.params`, new Uint32Array([T, N, K, xOff]));
  const layout: ('read' | 'rw' | 'uniform')[] = ['read', 'read', 'rw', 'uniform'];
  const bindings: GPUBuffer[] = [a.x, w.buffer, a.y, uniform];
  if (aux) {
    layout.push('read');
    bindings.push(aux);
  }
  const maxDim = gpu.limits.maxComputeWorkgroupsPerDimension;

  const vec8 = K % 8 === 0;
  if (vec8) defines.VEC8 = true;

  if (variant === 'mat') {
    defines.MAT = true;
    const bm = a.matTileRows ?? MAT_TILE_ROWS.find((r) => T <= r) ?? 64;
    if (!(MAT_TILE_ROWS as readonly number[]).includes(bm)) throw new ShapeError(`${label}: matTileRows ${bm} must be 16, 32 or 64`);
    const gx = Math.ceil(N / MAT_TILE_N);
    const gy = Math.ceil(T / bm);
    if (gx > maxDim || gy > maxDim) throw new ShapeError(`${label}: T = ${T}, N = ${N} exceed the tiled grid`);
    return {
      kind: 'kernel',
      label,
      shader: SHADER,
      entry: 'matmul_mat',
      defines,
      overrides: { BM: bm },
      layout,
      bindings,
      workgroups: [gx, gy],
    };
  }

  const chunks = K / (vec8 ? 8 : 2);
  const tt = T === 1 ? 1 : T === 2 ? 2 : VEC_MAX_T_TILE;
  if (tt === 2) defines.TT2 = true;
  if (tt === 4) defines.TT4 = true;
  const reduce = a.vecReduce ?? (gpu.features.subgroups ? 'subgroup' : 'workgroup');
  if (reduce === 'subgroup' && !gpu.features.subgroups) throw new ShapeError(`${label}: vecReduce 'subgroup' needs the subgroups feature`);
  const wg = a.vecWorkgroupSize ?? (reduce === 'subgroup' ? 128 : VEC_WG);
  if (!isPow2(wg) || wg > VEC_WG) throw new ShapeError(`${label}: vecWorkgroupSize ${wg} must be a power of two ≤ ${VEC_WG}`);
  let overrides: Record<string, number>;
  let rowsPerWg: number;
  if (reduce === 'subgroup') {
    defines.SUBGROUP = true;
    rowsPerWg = a.vecRowsPerWorkgroup ?? VEC_GROUP * Math.max(1, Math.floor(wg / subgroupMinSize(gpu)));
    needInt(rowsPerWg, 1, `${label}: vecRowsPerWorkgroup`);
    overrides = { WG: wg, ROWS: rowsPerWg };
  } else {
    // ~4 chunks (16 loads: 4 rows each) per thread before the reduction; 4…64 threads per row group.
    const tpr = a.vecThreadsPerRow ?? Math.min(64, wg, Math.max(4, nextPow2(Math.ceil(chunks / 4))));
    if (!isPow2(tpr) || tpr > wg) throw new ShapeError(`${label}: vecThreadsPerRow ${tpr} must be a power of two ≤ ${wg}`);
    rowsPerWg = (VEC_GROUP * wg) / tpr;
    overrides = { WG: wg, TPR: tpr };
  }
  const [gx, gy] = grid2d(Math.ceil(N / rowsPerWg), maxDim);
  const gz = Math.ceil(T / tt);
  if (gz > maxDim) throw new ShapeError(`${label}: T = ${T} is too large for the vec kernel`);
  return {
    kind: 'kernel',
    label,
    shader: SHADER,
    entry: 'matmul_vec',
    defines,
    overrides,
    layout,
    bindings,
    workgroups: [gx, gy, gz],
  };
}

/** Smallest subgroup size the device may use (GPUAdapterInfo.subgroupMinSize; 32 when not reported). */
function subgroupMinSize(gpu: Gpu): number {
  const info = (gpu.device as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo;
  const s = info?.subgroupMinSize;
  return typeof s === 'number' && s >= 1 ? s : 32;
}

function isPow2(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && (n & (n - 1)) === 0;
}

function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}
