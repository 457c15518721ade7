/**
 * VisualRWKV-v7.00 image rows (spec §6.2): backbone patch features (side², D) → AdaptiveAvgPool2d(√n) on the CPU →
 * MLP with context gating on the GPU: u = x ⊙ σ(x·W_gateᵀ), z = u·W_oᵀ, rows = LN(z; ln_v, eps 1e-5).
 * Rows are returned BEFORE Block-0 ln0 (the language model applies ln0 to every input row).
 */
import type { Gpu } from '../engine/gpu';
import { createStorage, readF32, uploadStorage } from '../engine/buffers';
import { submit, type KernelOp } from '../engine/op';
import { ShapeError, WeightsFormatError } from '../errors';
import { matmulOp } from '../kernels/matmul';
import { layerNormOp } from '../kernels/layer_norm';
import { uploadMatrix, type GpuMatrix } from '../kernels/types';
import type { Checkpoint } from '../weights/checkpoint';
import { toF32, type HostTensor } from '../weights/dtype';

/**
 * PyTorch AdaptiveAvgPool2d over a side×side grid of rows (row-major), to out×out rows: bins [⌊i·side/out⌋, ⌈(i+1)·side/out⌉).
 * @example adaptivePool(features, 1024, 48, 16) // 32×32 → 4×4 = 16 rows
 */
export function adaptivePool(features: Float32Array, rows: number, dim: number, nOut: number): Float32Array {
  const side = Math.round(Math.sqrt(rows));
  const out = Math.round(Math.sqrt(nOut));
  if (side * side !== rows) throw new ShapeError(`adaptivePool: ${rows} rows are not a square grid`);
  if (out * out !== nOut || out < 1 || out > side) throw new ShapeError(`adaptivePool: ${nOut} tokens must be a square ≤ ${rows}`);
  if (features.length !== rows * dim) throw new ShapeError(`adaptivePool: ${features.length} values for ${rows}×${dim}`);
  const res = new Float32Array(nOut * dim);
  const acc = new Float64Array(dim);
  const bin = (i: number) => [Math.floor((i * side) / out), Math.ceil(((i + 1) * side) / out)] as const;
  for (let oy = 0; oy < out; oy++) {
    const [y0, y1] = bin(oy);
    for (let ox = 0; ox < out; ox++) {
      const [x0, x1] = bin(ox);
      acc.fill(0);
      for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) {
        const o = (y * side + x) * dim;
        for (let c = 0; c < dim; c++) acc[c]! += features[o + c]!;
      }
      const cnt = (y1 - y0) * (x1 - x0);
      for (let c = 0; c < dim; c++) res[(oy * out + ox) * dim + c] = acc[c]! / cnt;
    }
  }
  return res;
}

function matrix(gpu: Gpu, key: string, t: HostTensor, rows: number, cols: number): GpuMatrix {
  if (t.dtype === 'BF16' || t.dtype === 'F16') return uploadMatrix(gpu, key, rows, cols, { dtype: t.dtype === 'BF16' ? 'bf16' : 'f16', bytes: t.bytes });
  return uploadMatrix(gpu, key, rows, cols, toF32(t));
}

export class ProjectorV7 {
  private constructor(
    private readonly gpu: Gpu,
    readonly gate: GpuMatrix, // (D, D)
    readonly oProj: GpuMatrix, // (C, D)
    readonly lnV: { weight: GPUBuffer; bias: GPUBuffer },
  ) {}

  get C(): number {
    return this.oProj.rows;
  }
  get D(): number {
    return this.oProj.cols;
  }

  /** Read `proj.gate.weight`, `proj.o_proj.weight`, `proj.ln_v.*`. Throws WeightsFormatError if missing or mis-shaped. */
  static async load(gpu: Gpu, ckpt: Checkpoint): Promise<ProjectorV7> {
    const get = async (k: string, shape?: number[]) => {
      const info = ckpt.tensors.get(k);
      if (!info) throw new WeightsFormatError(`${ckpt.name}: no '${k}' — not a VisualRWKV-7.00 checkpoint with its projector`);
      if (shape && (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i]))) {
        throw new WeightsFormatError(`${ckpt.name}: '${k}' has shape [${info.shape}], expected [${shape}]`);
      }
      return { info, t: await info.read() };
    };
    const o = await get('proj.o_proj.weight');
    const [C, D] = o.info.shape as [number, number];
    if (o.info.shape.length !== 2 || D % 2 !== 0) throw new WeightsFormatError(`${ckpt.name}: 'proj.o_proj.weight' has shape [${o.info.shape}], expected [C, D] with an even D`);
    const g = await get('proj.gate.weight', [D, D]);
    const w = await get('proj.ln_v.weight', [C]);
    const b = await get('proj.ln_v.bias', [C]);
    return new ProjectorV7(gpu, matrix(gpu, 'proj.gate.weight', g.t, D, D), matrix(gpu, 'proj.o_proj.weight', o.t, C, D), {
      weight: uploadStorage(gpu, 'proj.ln_v.weight', toF32(w.t)),
      bias: uploadStorage(gpu, 'proj.ln_v.bias', toF32(b.t)),
    });
  }

  /** Pool backbone features (rows = side², D) to `nTokens` rows and project them: nTokens rows of C (before ln0). */
  async project(features: Float32Array, rows: number, nTokens: number): Promise<Float32Array[]> {
    const { gpu, C, D } = this;
    const x = adaptivePool(features, rows, D, nTokens);
    const n = nTokens;
    const bufs: GPUBuffer[] = [];
    const ops: KernelOp[] = [];
    const buf = (label: string, size: number) => {
      const b = createStorage(gpu, label, size);
      bufs.push(b);
      return b;
    };
    try {
      const xb = uploadStorage(gpu, 'projv7.x', x);
      bufs.push(xb);
      const s = buf('projv7.gate', n * D * 4);
      ops.push(matmulOp(gpu, { x: xb, w: this.gate, y: s, T: n, epilogue: 'sigmoid', label: 'proj.gate' }));
      submit(gpu, ops.slice(0, 1));
      const sig = await readF32(gpu, s, 0, n * D);
      for (let i = 0; i < sig.length; i++) sig[i] = Math.fround(sig[i]! * x[i]!);
      const u = uploadStorage(gpu, 'projv7.u', sig);
      bufs.push(u);
      const z = buf('projv7.z', n * C * 4);
      const y = buf('projv7.y', n * C * 4);
      ops.push(
        matmulOp(gpu, { x: u, w: this.oProj, y: z, T: n, label: 'proj.o_proj' }),
        layerNormOp(gpu, { x: z, y, weight: this.lnV.weight, bias: this.lnV.bias, T: n, C, label: 'proj.ln_v' }),
      );
      submit(gpu, ops.slice(1));
      const out = await readF32(gpu, y, 0, n * C);
      return Array.from({ length: n }, (_, i) => out.subarray(i * C, (i + 1) * C));
    } finally {
      for (const b of bufs) b.destroy();
      for (const op of ops) op.layout.forEach((k, i) => k === 'uniform' && (op.bindings[i] as GPUBuffer).destroy());
    }
  }

  destroy(): void {
    this.gate.buffer.destroy();
    this.oProj.buffer.destroy();
    this.lnV.weight.destroy();
    this.lnV.bias.destroy();
  }
}
