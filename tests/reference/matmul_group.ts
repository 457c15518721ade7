/**
 * CPU reference for shaders/matmul_group.wgsl in float64: each block is a plain matmul (tests/reference/matmul.ts)
 * of its rows of W over its row block of x, written into its region of its output.
 */
import { matmulRef } from './matmul';
import type { GroupEpilogue } from '../../src/kernels/matmul_group';

export interface GroupRefBlock {
  rows: number;
  branch: number;
  epilogue?: GroupEpilogue;
  /** Index of the output array this block writes. */
  out: number;
  outOffset?: number;
}

export interface GroupRef {
  /** Per output array: values written (NaN where no block writes). */
  y: Float64Array[];
  /** Same layout: z before the epilogue, and Σ_k |x_k w_k| (the scale of the f32 rounding error of z). */
  z: Float64Array[];
  mag: Float64Array[];
  /** Same layout: the epilogue of the block that wrote the element. */
  epi: (GroupEpilogue | undefined)[][];
}

/** y_out[off + t·rows + n] = epi(Σ_k x[xRowOffset + branch·T + t, k] · W[n0 + n, k]) for every block. */
export function matmulGroupRef(
  x: Float32Array, w: Float64Array, K: number, T: number, blocks: readonly GroupRefBlock[], outSizes: readonly number[],
  xRowOffset = 0,
): GroupRef {
  const y = outSizes.map((n) => new Float64Array(n).fill(NaN));
  const z = outSizes.map((n) => new Float64Array(n).fill(NaN));
  const mag = outSizes.map((n) => new Float64Array(n).fill(NaN));
  const epi = outSizes.map((n) => new Array<GroupEpilogue | undefined>(n).fill(undefined));
  let n0 = 0;
  for (const b of blocks) {
    const wb = w.subarray(n0 * K, (n0 + b.rows) * K);
    const r = matmulRef({ x, w: wb, T, N: b.rows, K, xRowOffset: xRowOffset + b.branch * T, epilogue: b.epilogue ?? 'none' });
    const off = b.outOffset ?? 0;
    y[b.out]!.set(r.y, off);
    z[b.out]!.set(r.z, off);
    mag[b.out]!.set(r.mag, off);
    for (let i = 0; i < T * b.rows; i++) epi[b.out]![off + i] = b.epilogue ?? 'none';
    n0 += b.rows;
  }
  return { y, z, mag, epi };
}
