/**
 * VisualRWKV-v6.0 image rows (spec §6.1): grid pooling of the tower's `last_hidden_state` on the CPU, then the
 * linear projector `proj.weight` [C, D] (no bias) on the GPU. The rows returned are BEFORE Block-0 ln0: the language
 * model applies ln0 to every input row, image rows included (spec §6.3).
 */
import type { Gpu } from '../engine/gpu';
import { createStorage, readF32, uploadStorage } from '../engine/buffers';
import { submit } from '../engine/op';
import { InvalidArgumentError, ShapeError, UnsupportedDtypeError, WeightsFormatError } from '../errors';
import { matmulOp } from '../kernels/matmul';
import { uploadMatrix, type GpuMatrix } from '../kernels/types';
import type { Checkpoint } from '../weights/checkpoint';
import { toF32 } from '../weights/dtype';

/** Checkpoint key of the v6.0 projector (never prefixed, also in `rwkv.*` checkpoints). */
export const PROJ_KEY = 'proj.weight';

/**
 * `VisualRWKV.grid_pooling`: `hidden` is (tokens, dim) with CLS at row 0 and the patches P (tokens − 1 = side², 24² for
 * CLIP-L/336) row-major after it. The CLS row always goes LAST:
 * - grid −1: P then CLS (tokens rows; 577 as released);
 * - grid 0: CLS only;
 * - grid 1: mean(P) then CLS;
 * - grid n ≥ 2: s = ⌊side/n⌋, s×s average pooling with stride s and no padding over the side×side patch grid
 *   (⌊side/s⌋² windows, row-major), then CLS — n = 8 → 65 rows, n = 5 → 37.
 * Sums are taken in f64 and rounded once. Throws ShapeError for inconsistent sizes, InvalidArgumentError for a bad grid.
 *
 * @example
 * const { rows, n } = gridPool(out.hidden, out.tokens, out.dim, -1); // n = 577, rows (577, 1024)
 */
export function gridPool(hidden: Float32Array, tokens: number, dim: number, grid: number): { rows: Float32Array; n: number } {
  if (!Number.isInteger(tokens) || !Number.isInteger(dim) || tokens < 2 || dim < 1) {
    throw new ShapeError(`gridPool: tokens = ${tokens}, dim = ${dim} must be integers ≥ 2 and ≥ 1`);
  }
  if (hidden.length !== tokens * dim) throw new ShapeError(`gridPool: hidden has ${hidden.length} values, expected tokens·dim = ${tokens}·${dim}`);
  const side = Math.round(Math.sqrt(tokens - 1));
  if (side * side !== tokens - 1) throw new ShapeError(`gridPool: ${tokens} tokens is not CLS + a square patch grid (577 = 1 + 24² for CLIP-L/336)`);
  if (!Number.isInteger(grid) || grid < -1 || grid > side) {
    throw new InvalidArgumentError(`gridPool: grid size ${grid} must be an integer in −1…${side} (−1 = all ${tokens} rows, 0 = CLS only)`);
  }
  const cls = hidden.subarray(0, dim);
  const patch = (i: number) => hidden.subarray((1 + i) * dim, (2 + i) * dim);

  if (grid === -1) {
    const rows = new Float32Array(tokens * dim);
    rows.set(hidden.subarray(dim)); // the side² patches
    rows.set(cls, (tokens - 1) * dim);
    return { rows, n: tokens };
  }
  if (grid === 0) return { rows: cls.slice(), n: 1 };

  const s = grid === 1 ? side : Math.floor(side / grid);
  const per = Math.floor(side / s);
  const n = per * per + 1;
  const rows = new Float32Array(n * dim);
  const acc = new Float64Array(dim);
  for (let oy = 0; oy < per; oy++) {
    for (let ox = 0; ox < per; ox++) {
      acc.fill(0);
      for (let dy = 0; dy < s; dy++) {
        for (let dx = 0; dx < s; dx++) {
          const p = patch((oy * s + dy) * side + ox * s + dx);
          for (let c = 0; c < dim; c++) acc[c]! += p[c]!;
        }
      }
      const o = (oy * per + ox) * dim;
      for (let c = 0; c < dim; c++) rows[o + c] = acc[c]! / (s * s);
    }
  }
  rows.set(cls, (n - 1) * dim);
  return { rows, n };
}

/**
 * The v6.0 linear projector on the GPU: rows (n, D) → rows · proj.weightᵀ (n, C). bf16/f16 weights are used as
 * stored; an F32 `proj.weight` is rounded to bf16 (the matmul kernel takes 16-bit weights only).
 *
 * @example
 * const proj = await ProjectorV6.load(gpu, ckpt);
 * const { rows, n } = gridPool(out.hidden, out.tokens, out.dim, -1);
 * const imageRows = await proj.project(rows, n); // n Float32Array rows of C, before ln0
 */
export class ProjectorV6 {
  private constructor(
    private readonly gpu: Gpu,
    /** `proj.weight` (C, D). */
    readonly weight: GpuMatrix,
  ) {}

  /** Model width C (output row length). */
  get C(): number {
    return this.weight.rows;
  }

  /** Vision feature width D (input row length): 1024 for CLIP ViT-L. */
  get D(): number {
    return this.weight.cols;
  }

  /** Read `proj.weight` [C, D] from a checkpoint. Throws WeightsFormatError if it is missing or not 2-D. */
  static async load(gpu: Gpu, ckpt: Checkpoint): Promise<ProjectorV6> {
    const info = ckpt.tensors.get(PROJ_KEY);
    if (!info) {
      throw new WeightsFormatError(
        `${ckpt.name}: no '${PROJ_KEY}' — not a VisualRWKV-6 checkpoint with its projector (a bare RWKV LM or a split _rwkv.pth?)`,
      );
    }
    const [C, D] = info.shape;
    if (info.shape.length !== 2 || !(C! >= 1) || !(D! >= 2) || D! % 2 !== 0) {
      throw new WeightsFormatError(`${ckpt.name}: '${PROJ_KEY}' has shape [${info.shape.join(', ')}], expected [C, D] with an even D`);
    }
    const t = await info.read();
    let w: GpuMatrix;
    if (t.dtype === 'BF16' || t.dtype === 'F16') {
      w = uploadMatrix(gpu, PROJ_KEY, C!, D!, { dtype: t.dtype === 'BF16' ? 'bf16' : 'f16', bytes: t.bytes });
    } else if (t.dtype === 'F32' || t.dtype === 'F64') {
      w = uploadMatrix(gpu, PROJ_KEY, C!, D!, toF32(t));
    } else {
      throw new UnsupportedDtypeError(`${ckpt.name}: '${PROJ_KEY}' has dtype ${t.dtype}; expected BF16, F16 or F32`);
    }
    return new ProjectorV6(gpu, w);
  }

  /**
   * Project `n` pooled rows (n, D) to `n` rows of C (before ln0). Throws ShapeError if `pooled` is not n·D long.
   * The returned rows are views into one buffer.
   */
  async project(pooled: Float32Array, n: number): Promise<Float32Array[]> {
    const { C, D } = this;
    if (!Number.isInteger(n) || n < 1) throw new ShapeError(`ProjectorV6.project: n = ${n} must be an integer ≥ 1`);
    if (pooled.length !== n * D) throw new ShapeError(`ProjectorV6.project: ${pooled.length} values for ${n} rows of D = ${D}`);
    const gpu = this.gpu;
    const x = uploadStorage(gpu, 'proj.x', pooled);
    const y = createStorage(gpu, 'proj.y', n * C * 4);
    const op = matmulOp(gpu, { x, w: this.weight, y, T: n, label: 'proj' });
    try {
      submit(gpu, [op]);
      const out = await readF32(gpu, y, 0, n * C);
      return Array.from({ length: n }, (_, i) => out.subarray(i * C, (i + 1) * C));
    } finally {
      // The op's own small uniform and the two scratch buffers; never the weight.
      for (const b of op.bindings) {
        const buf = 'buffer' in b ? b.buffer : b;
        if (buf !== this.weight.buffer) buf.destroy();
      }
    }
  }

  /** Free the GPU weight. */
  destroy(): void {
    this.weight.buffer.destroy();
  }
}
