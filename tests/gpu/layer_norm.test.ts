import { describe, expect, it } from 'vitest';
import { testGpu, checked } from '../helpers/gpu';
import { createStorage, readF32, uploadStorage } from '../../src/engine/buffers';
import { submit } from '../../src/engine/op';
import { layerNormOp, LAYER_NORM_MAX_C } from '../../src/kernels/layer_norm';
import { ShapeError } from '../../src/errors';
import { layerNormRef } from '../reference/layer_norm';
import { expectWithin, randomF32, rng } from '../reference/matmul';

/**
 * Error allowed per element: LN_REL · (|weight|·(|x̂| + 1) + |bias|). The shifted two-pass keeps x̂ accurate to a few
 * f32 ulps relative to the row's spread (not its mean), so 16 ulps (≈1e-6) is ample; a plain E[x²]−μ² kernel fails
 * the large-mean rows by orders of magnitude.
 */
const LN_REL = 1e-6;

interface Case {
  name: string;
  T: number;
  C: number;
  rowOffset?: number;
  eps?: number;
  /** Row r: mean and spread of its values. */
  row: (r: number) => { mean: number; spread: number };
}

const plain = () => ({ mean: 0, spread: 2 });
const CASES: Case[] = [
  { name: 'C=32, T=1', T: 1, C: 32, row: plain },
  { name: 'C=32, T=5, rowOffset=3', T: 5, C: 32, rowOffset: 3, row: plain },
  { name: 'C=128, T=300, mixed magnitudes', T: 300, C: 128, row: (r) => ({ mean: [0, 10, -100, 3][r % 4]!, spread: [1, 0.01, 0.05, 30][r % 4]! }) },
  { name: 'C=2048, T=3, large mean / small variance', T: 3, C: 2048, row: (r) => ({ mean: [100, -50, 20][r]!, spread: [0.01, 0.003, 1][r]! }) },
  { name: 'C=4096 (max), T=2, rowOffset=1, eps=1e-6', T: 2, C: LAYER_NORM_MAX_C, rowOffset: 1, eps: 1e-6, row: (r) => ({ mean: 10 * r, spread: 0.1 }) },
  { name: 'C=34 (odd pair count), constant row', T: 2, C: 34, row: (r) => ({ mean: 7.25, spread: r === 0 ? 0 : 0.5 }) },
];

describe('layer_norm', () => {
  for (const cs of CASES) {
    it(cs.name, async () => {
      const gpu = await testGpu();
      const r = rng(cs.C * 7919 + cs.T);
      const rows = (cs.rowOffset ?? 0) + cs.T;
      const x = new Float32Array(rows * cs.C);
      for (let i = 0; i < rows; i++) {
        const { mean, spread } = cs.row(Math.max(0, i - (cs.rowOffset ?? 0)));
        for (let c = 0; c < cs.C; c++) x[i * cs.C + c] = mean + spread * (2 * r() - 1);
      }
      const weight = randomF32(r, cs.C, -2, 2);
      const bias = randomF32(r, cs.C, -1, 1);
      const got = await checked(gpu, async () => {
        const xb = uploadStorage(gpu, 'x', x);
        const yb = createStorage(gpu, 'y', cs.T * cs.C * 4);
        const op = layerNormOp(gpu, {
          x: xb, y: yb, weight: uploadStorage(gpu, 'w', weight), bias: uploadStorage(gpu, 'b', bias),
          T: cs.T, C: cs.C, rowOffset: cs.rowOffset, eps: cs.eps, label: `ln ${cs.name}`,
        });
        submit(gpu, [op]);
        return readF32(gpu, yb, 0, cs.T * cs.C);
      });
      const ref = layerNormRef({ x, weight, bias, T: cs.T, C: cs.C, rowOffset: cs.rowOffset, eps: cs.eps });
      const tol = ref.y.map((_, i) => LN_REL * (Math.abs(weight[i % cs.C]!) * (Math.abs(ref.xhat[i]!) + 1) + Math.abs(bias[i % cs.C]!)));
      const worst = expectWithin(got, ref.y, tol, `layer_norm ${cs.name}`);
      console.log(`layer_norm ${cs.name}: worst error/tolerance ${worst.toFixed(3)}`);
    });
  }

  it('rejects bad shapes', async () => {
    const gpu = await testGpu();
    const b = createStorage(gpu, 'b', 4 * 64);
    const y = createStorage(gpu, 'y', 4 * 64);
    const args = { x: b, y, weight: b, bias: b, T: 1, C: 64 };
    expect(() => layerNormOp(gpu, { ...args, C: 63 })).toThrow(ShapeError);
    expect(() => layerNormOp(gpu, { ...args, T: 2 })).toThrow(ShapeError); // x too small
    expect(() => layerNormOp(gpu, { ...args, rowOffset: 1 })).toThrow(ShapeError);
    expect(() => layerNormOp(gpu, { ...args, y: b })).toThrow(ShapeError);
    expect(() => layerNormOp(gpu, { ...args, C: LAYER_NORM_MAX_C + 2 })).toThrow(ShapeError);
  });
});
