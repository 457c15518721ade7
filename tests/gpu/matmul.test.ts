import { describe, expect, it } from 'vitest';
import { testGpu, checked } from '../helpers/gpu';
import type { Gpu } from '../../src/engine/gpu';
import { createStorage, readF32, uploadStorage } from '../../src/engine/buffers';
import { submit } from '../../src/engine/op';
import { matmulOp, matmulFlops, EPILOGUES, VEC_AUTO_MAX_T, type Epilogue, type MatmulArgs } from '../../src/kernels/matmul';
import { uploadMatrix } from '../../src/kernels/types';
import { ShapeError } from '../../src/errors';
import { f32ToBf16 } from '../../src/weights/dtype';
import { bf16ToF64, epilogueSlope, expectWithin, matmulRef, random16, randomF32, rng } from '../reference/matmul';

/**
 * Error allowed in z = x·wᵀ: Z_REL · √K · Σ_k|x_k w_k|. The weights are exact (same 16-bit values on both sides), so
 * only f32 rounding of the products and partial sums remains; it grows like √K for a blocked/tree sum
 * (2⁻²⁴ ≈ 6e-8 per operation; Z_REL = 3e-7 ≈ 5 ulps per √K, still 8× below one dropped term at K = 6146).
 */
const Z_REL = 3e-7;
/** Extra error of the epilogue function itself (f32 exp/division, the final add), relative to 1 + |y|. */
const EPI_REL = 2e-6;

interface Case {
  name: string;
  T: number;
  N: number;
  K: number;
  dtype: 'bf16' | 'f16';
  variant: 'auto' | 'vec' | 'mat';
  epilogue?: Epilogue;
  xRowOffset?: number;
  vecReduce?: 'subgroup' | 'workgroup';
  vecThreadsPerRow?: number;
  vecWorkgroupSize?: number;
  vecRowsPerWorkgroup?: number;
  matTileRows?: 16 | 32 | 64;
}

async function runCase(gpu: Gpu, cs: Case, seed: number): Promise<number> {
  const r = rng(seed);
  const { T, N, K } = cs;
  const epi = cs.epilogue ?? 'none';
  const off = cs.xRowOffset ?? 0;
  // Scale x so |z| stays in the interesting range of the nonlinearities (~±4) for any K.
  const x = randomF32(r, (off + T) * K, -3 / Math.sqrt(K), 3 / Math.sqrt(K));
  const w = random16(r, cs.dtype, N, K, 2);
  const yIn = randomF32(r, T * N, -2, 2);
  const bias = randomF32(r, N, -1, 1);
  const m = randomF32(r, T * N, -2, 2);
  const got = await checked(gpu, async () => {
    const args: MatmulArgs = {
      x: uploadStorage(gpu, 'x', x),
      w: uploadMatrix(gpu, `w ${cs.name}`, N, K, { dtype: cs.dtype, bytes: w.bytes }),
      y: uploadStorage(gpu, 'y', yIn),
      T,
      epilogue: cs.epilogue,
      xRowOffset: cs.xRowOffset,
      variant: cs.variant,
      vecReduce: cs.vecReduce,
      vecThreadsPerRow: cs.vecThreadsPerRow,
      vecWorkgroupSize: cs.vecWorkgroupSize,
      vecRowsPerWorkgroup: cs.vecRowsPerWorkgroup,
      matTileRows: cs.matTileRows,
      label: cs.name,
    };
    if (epi === 'bias') args.bias = uploadStorage(gpu, 'bias', bias);
    if (epi === 'mul_add') args.m = uploadStorage(gpu, 'm', m);
    submit(gpu, [matmulOp(gpu, args)]);
    return readF32(gpu, args.y, 0, T * N);
  });
  const ref = matmulRef({ x, w: w.values, T, N, K, xRowOffset: off, epilogue: epi, yIn, bias, m });
  const tol = ref.y.map((yv, i) => {
    const ez = Z_REL * Math.sqrt(K) * ref.mag[i]! + 1e-30;
    return epilogueSlope(epi, ref.z[i]!, ez, m[i]!) * ez + EPI_REL * (1 + Math.abs(yv));
  });
  return expectWithin(got, ref.y, tol, `matmul ${cs.name}`);
}

const SHAPES: Case[] = [
  // vec: u32 loads (K % 8 ≠ 0) and 16-byte loads (K % 8 = 0), chunk counts that are not multiples of the thread count.
  { name: 'vec T=1 N=70 K=34 bf16', T: 1, N: 70, K: 34, dtype: 'bf16', variant: 'vec' },
  { name: 'vec T=1 N=96 K=2048 f16', T: 1, N: 96, K: 2048, dtype: 'f16', variant: 'vec' },
  { name: 'vec T=3 N=130 K=264 bf16 xRowOffset=2', T: 3, N: 130, K: 264, dtype: 'bf16', variant: 'vec', xRowOffset: 2 },
  { name: 'vec T=8 N=50 K=136 f16', T: 8, N: 50, K: 136, dtype: 'f16', variant: 'vec' },
  { name: 'vec T=13 (four token tiles) N=33 K=40 bf16', T: 13, N: 33, K: 40, dtype: 'bf16', variant: 'vec' },
  { name: 'vec T=2 N=90 K=6146 bf16 (long rows)', T: 2, N: 90, K: 6146, dtype: 'bf16', variant: 'vec' },
  { name: 'vec T=1 N=40 K=512 f16, 256 threads/row', T: 1, N: 40, K: 512, dtype: 'f16', variant: 'vec', vecReduce: 'workgroup', vecThreadsPerRow: 256 },
  { name: 'vec T=2 N=41 K=512 bf16, 3 rows per subgroup', T: 2, N: 41, K: 512, dtype: 'bf16', variant: 'vec', vecReduce: 'subgroup', vecWorkgroupSize: 64, vecRowsPerWorkgroup: 48 },
  // Workgroups of 6 rows: row groups of 4 straddle workgroup ends (the second group of each has 2 rows).
  { name: 'vec T=4 N=45 K=80 f16, 6 rows per workgroup', T: 4, N: 45, K: 80, dtype: 'f16', variant: 'vec', vecReduce: 'subgroup', vecWorkgroupSize: 8, vecRowsPerWorkgroup: 6 },
  { name: 'vec T=1 N=37 K=264 bf16, 2 threads per row group', T: 1, N: 37, K: 264, dtype: 'bf16', variant: 'vec', vecReduce: 'workgroup', vecWorkgroupSize: 16, vecThreadsPerRow: 2 },
  { name: 'vec T=1 N=65538 K=32 bf16 (vocab-size N)', T: 1, N: 65538, K: 32, dtype: 'bf16', variant: 'vec' },
  // One row per 4-thread workgroup: 65539 workgroups, folded into a (32770, 2) grid with one idle workgroup.
  {
    name: 'vec T=1 N=65539 K=32 f16, > 65535 workgroups', T: 1, N: 65539, K: 32, dtype: 'f16', variant: 'vec',
    vecReduce: 'workgroup', vecWorkgroupSize: 4, vecThreadsPerRow: 4,
  },
  {
    name: 'vec T=1 N=65539 K=32 bf16, > 65535 subgroup workgroups', T: 1, N: 65539, K: 32, dtype: 'bf16', variant: 'vec',
    vecReduce: 'subgroup', vecWorkgroupSize: 4, vecRowsPerWorkgroup: 1,
  },
  // mat: tails in every dimension (300 = 4·64 + 44, 198 = 3·64 + 6, 130 = 8·16 + 2).
  { name: 'mat T=300 N=198 K=130 bf16', T: 300, N: 198, K: 130, dtype: 'bf16', variant: 'mat' },
  { name: 'mat T=64 N=64 K=64 f16 (exact tiles)', T: 64, N: 64, K: 64, dtype: 'f16', variant: 'mat' },
  { name: 'mat T=1 N=66 K=18 bf16', T: 1, N: 66, K: 18, dtype: 'bf16', variant: 'mat' },
  { name: 'mat T=70 N=40 K=1030 f16 xRowOffset=5', T: 70, N: 40, K: 1030, dtype: 'f16', variant: 'mat', xRowOffset: 5 },
  // mat with 16-byte loads (K % 8 = 0): K = 264 ends on half a 16-wide k step; 150 = 2·64 + 22, 130 = 2·64 + 2.
  { name: 'mat T=150 N=130 K=264 bf16', T: 150, N: 130, K: 264, dtype: 'bf16', variant: 'mat' },
  // T-adaptive tile height: 16-row tiles (T ≤ 16), 32-row tiles (T ≤ 32).
  { name: 'mat T=9 N=200 K=64 f16 (16-row tile)', T: 9, N: 200, K: 64, dtype: 'f16', variant: 'mat' },
  { name: 'mat T=30 N=70 K=136 bf16 (32-row tile) xRowOffset=3', T: 30, N: 70, K: 136, dtype: 'bf16', variant: 'mat', xRowOffset: 3 },
  { name: 'mat T=41 N=66 K=34 f16, 16-row tiles', T: 41, N: 66, K: 34, dtype: 'f16', variant: 'mat', matTileRows: 16 },
  { name: 'mat T=41 N=66 K=72 bf16, 32-row tiles', T: 41, N: 66, K: 72, dtype: 'bf16', variant: 'mat', matTileRows: 32 },
  { name: 'mat T=3 N=65 K=40 bf16, 64-row tile', T: 3, N: 65, K: 40, dtype: 'bf16', variant: 'mat', matTileRows: 64 },
  { name: `auto T=${VEC_AUTO_MAX_T + 1} (→ mat) N=1030 K=32 f16`, T: VEC_AUTO_MAX_T + 1, N: 1030, K: 32, dtype: 'f16', variant: 'auto' },
  { name: `auto T=${VEC_AUTO_MAX_T} (→ vec) N=100 K=96 bf16`, T: VEC_AUTO_MAX_T, N: 100, K: 96, dtype: 'bf16', variant: 'auto' },
];

function reductions(gpu: Gpu): ('subgroup' | 'workgroup')[] {
  return gpu.features.subgroups ? ['subgroup', 'workgroup'] : ['workgroup'];
}

describe('matmul', () => {
  it('uses subgroups when the device has them (SwiftShader does)', async () => {
    const gpu = await testGpu();
    expect(gpu.features.subgroups).toBe(true);
  });

  for (const [i, shape] of SHAPES.entries()) {
    it(shape.name, async () => {
      const gpu = await testGpu();
      // vec shapes run with both reductions (the subgroup one only exists on devices with subgroups).
      const isMat = shape.variant === 'mat' || (shape.variant === 'auto' && shape.T > VEC_AUTO_MAX_T);
      const reduces = isMat || shape.vecReduce ? [shape.vecReduce] : reductions(gpu);
      for (const vecReduce of reduces) {
        const cs = { ...shape, vecReduce, name: `${shape.name}${vecReduce ? ` (${vecReduce})` : ''}` };
        const worst = await runCase(gpu, cs, 1000 + i);
        console.log(`${cs.name}: worst error/tolerance ${worst.toFixed(3)}`);
      }
    });
  }

  for (const variant of ['vec', 'mat'] as const) {
    for (const dtype of ['bf16', 'f16'] as const) {
      it(`${variant} ${dtype}: every epilogue`, async () => {
        const gpu = await testGpu();
        const T = variant === 'vec' ? 2 : 67;
        let worst = 0;
        for (const [j, epilogue] of EPILOGUES.entries()) {
          for (const vecReduce of variant === 'vec' ? reductions(gpu) : [undefined]) {
            const cs: Case = { name: `${variant} ${dtype} ${epilogue} T=${T} N=66 K=48 ${vecReduce ?? ''}`, T, N: 66, K: 48, dtype, variant, epilogue, xRowOffset: 1, vecReduce };
            worst = Math.max(worst, await runCase(gpu, cs, 50 + j));
          }
        }
        console.log(`${variant} ${dtype} epilogues: worst error/tolerance ${worst.toFixed(3)}`);
      });
    }
  }

  it('uploadMatrix converts f32 to bf16 with round-to-nearest-even', async () => {
    const gpu = await testGpu();
    const r = rng(7);
    const [T, N, K] = [1, 20, 10];
    const wf = randomF32(r, N * K, -2, 2);
    wf[0] = 1 + 2 ** -8; // exactly halfway between two bf16 values: rounds to even (1.0)
    wf[1] = 1 + 3 * 2 ** -8; // halfway: rounds up to even (1 + 2⁻⁶)
    const x = randomF32(r, T * K);
    const got = await checked(gpu, async () => {
      const w = uploadMatrix(gpu, 'w f32', N, K, wf);
      expect(w.dtype).toBe('bf16');
      const y = createStorage(gpu, 'y', T * N * 4);
      submit(gpu, [matmulOp(gpu, { x: uploadStorage(gpu, 'x', x), w, y, T })]);
      return readF32(gpu, y, 0, T * N);
    });
    expect(bf16ToF64(f32ToBf16(wf[0]!))).toBe(1);
    expect(bf16ToF64(f32ToBf16(wf[1]!))).toBe(1 + 2 ** -6);
    const wv = Float64Array.from(wf, (v) => bf16ToF64(f32ToBf16(v)));
    const ref = matmulRef({ x, w: wv, T, N, K });
    expectWithin(got, ref.y, ref.mag.map((g) => Z_REL * Math.sqrt(K) * g + 1e-30), 'f32-uploaded matmul');
  });

  it('rejects bad shapes', async () => {
    const gpu = await testGpu();
    const w = uploadMatrix(gpu, 'w', 8, 16, new Float32Array(128));
    const x = createStorage(gpu, 'x', 2 * 16 * 4);
    const y = createStorage(gpu, 'y', 2 * 8 * 4);
    expect(() => uploadMatrix(gpu, 'odd', 4, 5, new Float32Array(20))).toThrow(ShapeError);
    expect(() => uploadMatrix(gpu, 'short', 4, 4, { dtype: 'f16', bytes: new Uint8Array(30) })).toThrow(ShapeError);
    expect(() => matmulOp(gpu, { x, w, y, T: 3 })).toThrow(ShapeError); // x too small
    expect(() => matmulOp(gpu, { x, w, y, T: 2, xRowOffset: 1 })).toThrow(ShapeError);
    expect(() => matmulOp(gpu, { x, w, y: x, T: 1 })).toThrow(ShapeError);
    expect(() => matmulOp(gpu, { x, w, y, T: 1, epilogue: 'bias' })).toThrow(ShapeError);
    expect(() => matmulOp(gpu, { x, w, y, T: 1, epilogue: 'mul_add', m: y })).toThrow(ShapeError);
    expect(() => matmulOp(gpu, { x, w, y, T: 1, vecReduce: 'workgroup', vecThreadsPerRow: 48 })).toThrow(ShapeError);
    expect(() => matmulOp(gpu, { x, w, y, T: 1, vecReduce: 'workgroup', vecWorkgroupSize: 16, vecThreadsPerRow: 32 })).toThrow(ShapeError);
    expect(() => matmulOp(gpu, { x, w, y, T: 1, vecWorkgroupSize: 512 })).toThrow(ShapeError);
    expect(() => matmulOp(gpu, { x, w, y, T: 1, variant: 'mat', matTileRows: 8 as 16 })).toThrow(ShapeError);
    expect(matmulOp(gpu, { x, w, y, T: 2 }).entry).toBe('matmul_vec');
    expect(matmulOp(gpu, { x, w, y, T: 2, variant: 'mat' }).entry).toBe('matmul_mat');
    const T = VEC_AUTO_MAX_T + 1;
    const xl = createStorage(gpu, 'x long', T * 16 * 4);
    const yl = createStorage(gpu, 'y long', T * 8 * 4);
    expect(matmulOp(gpu, { x: xl, w, y: yl, T: T - 1 }).entry).toBe('matmul_vec');
    const tiled = matmulOp(gpu, { x: xl, w, y: yl, T });
    expect(tiled.entry).toBe('matmul_mat');
    expect(tiled.overrides).toEqual({ BM: 32 }); // the smallest tile height holding T = 17
    expect(tiled.workgroups).toEqual([1, 1]);
    expect(matmulFlops(2, 8, 16)).toBe(512);
  });
});
