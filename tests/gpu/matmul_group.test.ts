/**
 * matmul_group: several Linear blocks in one dispatch (vec and tiled) vs the float64 per-block reference, packed and
 * split outputs, blocks whose sizes are not tile multiples, untouched elements outside the block regions, concatRows,
 * and shape checks.
 */
import { describe, expect, it } from 'vitest';
import { testGpu, checked } from '../helpers/gpu';
import type { Gpu } from '../../src/engine/gpu';
import { createStorage, readF32, uploadStorage } from '../../src/engine/buffers';
import { submit } from '../../src/engine/op';
import { matmulGroupOp, concatRows, type MatmulGroupBlock } from '../../src/kernels/matmul_group';
import { uploadMatrix } from '../../src/kernels/types';
import { ShapeError, UnsupportedDtypeError } from '../../src/errors';
import { epilogueSlope, expectWithin, random16, randomF32, rng } from '../reference/matmul';
import { matmulGroupRef, type GroupRefBlock } from '../reference/matmul_group';

/** Error allowed in z: Z_REL · √K · Σ_k|x_k w_k| — f32 rounding of products and partial sums (as tests/gpu/matmul). */
const Z_REL = 3e-7;
/** Extra error of the epilogue function itself (f32 exp/division), relative to 1 + |y|. */
const EPI_REL = 2e-6;
/** Value the output buffers start with: elements outside every block's region must keep it exactly. */
const SENTINEL = 12345.5;

interface Case {
  name: string;
  T: number;
  K: number;
  dtype: 'bf16' | 'f16';
  variant: 'auto' | 'vec' | 'mat';
  blocks: GroupRefBlock[];
  /** Sizes of the output buffers in elements. */
  outs: number[];
  xRowOffset?: number;
}

async function runCase(gpu: Gpu, cs: Case, seed: number, vecReduce?: 'subgroup' | 'workgroup'): Promise<number> {
  const r = rng(seed);
  const { T, K } = cs;
  const off = cs.xRowOffset ?? 0;
  const branches = Math.max(...cs.blocks.map((b) => b.branch)) + 1;
  const rows = cs.blocks.reduce((n, b) => n + b.rows, 0);
  const x = randomF32(r, (off + branches * T) * K, -3 / Math.sqrt(K), 3 / Math.sqrt(K));
  const w = random16(r, cs.dtype, rows, K, 2);
  const got = await checked(gpu, async () => {
    const outs = cs.outs.map((n, i) => uploadStorage(gpu, `y${i}`, new Float32Array(n).fill(SENTINEL)));
    const blocks: MatmulGroupBlock[] = cs.blocks.map((b) => ({ rows: b.rows, branch: b.branch, epilogue: b.epilogue, out: outs[b.out]!, outOffset: b.outOffset }));
    const op = matmulGroupOp(gpu, {
      x: uploadStorage(gpu, 'x', x),
      w: uploadMatrix(gpu, `w ${cs.name}`, rows, K, { dtype: cs.dtype, bytes: w.bytes }),
      blocks, T, xRowOffset: cs.xRowOffset, variant: cs.variant, vecReduce, label: cs.name,
    });
    submit(gpu, [op]);
    return Promise.all(outs.map((b, i) => readF32(gpu, b, 0, cs.outs[i]!)));
  });
  const ref = matmulGroupRef(x, w.values, K, T, cs.blocks, cs.outs, off);
  let worst = 0;
  ref.y.forEach((want, o) => {
    const g = got[o]!;
    const written = [...want.keys()].filter((i) => !Number.isNaN(want[i]!));
    for (let i = 0; i < want.length; i++) {
      if (Number.isNaN(want[i]!)) expect(g[i], `${cs.name}: output ${o}[${i}] outside every block was written`).toBe(SENTINEL);
    }
    const tol = written.map((i) => {
      const ez = Z_REL * Math.sqrt(K) * ref.mag[o]![i]! + 1e-30;
      return epilogueSlope(ref.epi[o]![i]!, ref.z[o]![i]!, ez, 0) * ez + EPI_REL * (1 + Math.abs(want[i]!));
    });
    worst = Math.max(worst, expectWithin(written.map((i) => g[i]!), written.map((i) => want[i]!), tol, `${cs.name} output ${o}`));
  });
  return worst;
}

// RWKV-6 time-mix shape: r, k, v, g (silu), decay down (tanh) from branches 3, 1, 2, 4, 0, packed into one buffer.
const rkvgd = (C: number, Rd: number, T: number): GroupRefBlock[] => [
  { rows: C, branch: 3, out: 0, outOffset: 0 },
  { rows: C, branch: 1, out: 0, outOffset: T * C },
  { rows: C, branch: 2, out: 0, outOffset: 2 * T * C },
  { rows: C, branch: 4, epilogue: 'silu', out: 0, outOffset: 3 * T * C },
  { rows: Rd, branch: 0, epilogue: 'tanh', out: 0, outOffset: 4 * T * C },
];

const CASES: Case[] = [
  { name: 'vec T=1 rwkv6 time-mix packed (C=128, Rd=64) bf16', T: 1, K: 128, dtype: 'bf16', variant: 'vec', blocks: rkvgd(128, 64, 1), outs: [4 * 128 + 64] },
  { name: 'vec T=3 rwkv6 time-mix packed (C=64, Rd=32) f16, xRowOffset=2', T: 3, K: 64, dtype: 'f16', variant: 'vec', blocks: rkvgd(64, 32, 3), outs: [3 * (4 * 64 + 32)], xRowOffset: 2 },
  {
    name: 'vec T=2 K=34 (u32 loads) odd block sizes, 3 outputs, gaps', T: 2, K: 34, dtype: 'bf16', variant: 'vec',
    blocks: [
      { rows: 70, branch: 1, epilogue: 'relu2', out: 0, outOffset: 3 },
      { rows: 33, branch: 0, epilogue: 'sigmoid', out: 1 },
      { rows: 5, branch: 2, out: 2, outOffset: 1 },
      { rows: 9, branch: 1, epilogue: 'tanh', out: 0, outOffset: 200 },
    ],
    outs: [220, 66, 12],
  },
  {
    name: 'vec T=1 channel mix key (relu2) + receptance (sigmoid), split', T: 1, K: 128, dtype: 'bf16', variant: 'vec',
    blocks: [{ rows: 448, branch: 0, epilogue: 'relu2', out: 0 }, { rows: 128, branch: 1, epilogue: 'sigmoid', out: 1 }],
    outs: [448, 128],
  },
  { name: 'mat T=5 (16-row tiles) rwkv6 time-mix packed (C=64, Rd=32) bf16', T: 5, K: 64, dtype: 'bf16', variant: 'mat', blocks: rkvgd(64, 32, 5), outs: [5 * (4 * 64 + 32)] },
  { name: 'auto T=16 (→ vec, 4 token tiles) rwkv6 time-mix packed (C=64, Rd=32) f16', T: 16, K: 64, dtype: 'f16', variant: 'auto', blocks: rkvgd(64, 32, 16), outs: [16 * (4 * 64 + 32)] },
  {
    name: 'auto T=20 (→ mat, 32-row tiles) K=72 odd blocks, 2 outputs', T: 20, K: 72, dtype: 'bf16', variant: 'auto',
    blocks: [{ rows: 70, branch: 1, epilogue: 'silu', out: 0 }, { rows: 3, branch: 0, epilogue: 'tanh', out: 1 }, { rows: 65, branch: 2, out: 0, outOffset: 20 * 70 }],
    outs: [20 * 135, 60],
  },
  {
    name: 'mat T=300 K=130, 5 split outputs, blocks not tile multiples', T: 300, K: 130, dtype: 'f16', variant: 'mat',
    blocks: [
      { rows: 100, branch: 3, out: 0 },
      { rows: 30, branch: 1, out: 1 },
      { rows: 64, branch: 2, out: 2, epilogue: 'relu2' },
      { rows: 1, branch: 4, epilogue: 'silu', out: 3 },
      { rows: 70, branch: 0, epilogue: 'tanh', out: 4 },
    ],
    outs: [300 * 100, 300 * 30, 300 * 64, 300, 300 * 70],
    xRowOffset: 1,
  },
  {
    name: 'mat T=1 (forced) two blocks, one output', T: 1, K: 18, dtype: 'bf16', variant: 'mat',
    blocks: [{ rows: 66, branch: 1, epilogue: 'sigmoid', out: 0 }, { rows: 3, branch: 0, out: 0, outOffset: 66 }],
    outs: [69],
  },
  {
    name: 'mat T=67 channel mix (F=448, C=128)', T: 67, K: 128, dtype: 'bf16', variant: 'mat',
    blocks: [{ rows: 448, branch: 0, epilogue: 'relu2', out: 0 }, { rows: 128, branch: 1, epilogue: 'sigmoid', out: 1 }],
    outs: [67 * 448, 67 * 128],
  },
];

describe('matmul_group', () => {
  for (const [i, cs] of CASES.entries()) {
    it(cs.name, async () => {
      const gpu = await testGpu();
      const isMat = cs.variant === 'mat' || (cs.variant === 'auto' && cs.T > 16);
      const reduces: ('subgroup' | 'workgroup' | undefined)[] = isMat ? [undefined] : gpu.features.subgroups ? ['subgroup', 'workgroup'] : ['workgroup'];
      for (const red of reduces) {
        const worst = await runCase(gpu, cs, 300 + i, red);
        console.log(`${cs.name}${red ? ` (${red})` : ''}: worst error/tolerance ${worst.toFixed(3)}`);
      }
    });
  }

  it('concatRows stacks matrices in order (the group over the stacked matrix matches the per-part reference)', async () => {
    const gpu = await testGpu();
    const r = rng(9);
    const K = 48;
    const T = 2;
    const sizes = [20, 7, 33];
    const parts = sizes.map((n) => random16(r, 'f16', n, K, 2));
    const x = randomF32(r, 3 * T * K, -0.5, 0.5);
    const blocks: GroupRefBlock[] = [];
    let off = 0;
    sizes.forEach((n, i) => {
      blocks.push({ rows: n, branch: 2 - i, out: 0, outOffset: off });
      off += T * n;
    });
    const got = await checked(gpu, async () => {
      const w = concatRows(gpu, 'stacked', parts.map((p, i) => uploadMatrix(gpu, `p${i}`, sizes[i]!, K, { dtype: 'f16', bytes: p.bytes })));
      expect([w.rows, w.cols, w.dtype]).toEqual([60, K, 'f16']);
      const out = createStorage(gpu, 'out', T * 60 * 4);
      submit(gpu, [matmulGroupOp(gpu, { x: uploadStorage(gpu, 'x', x), w, T, blocks: blocks.map((b) => ({ ...b, out })) })]);
      return readF32(gpu, out, 0, T * 60);
    });
    const all = new Float64Array(60 * K);
    let o = 0;
    for (const p of parts) {
      all.set(p.values, o);
      o += p.values.length;
    }
    const ref = matmulGroupRef(x, all, K, T, blocks, [T * 60]);
    expectWithin(got, ref.y[0]!, ref.mag[0]!.map((g) => Z_REL * Math.sqrt(K) * g + 1e-30), 'stacked');
  });

  it('rejects bad shapes and mixed dtypes', async () => {
    const gpu = await testGpu();
    const w = uploadMatrix(gpu, 'w', 8, 16, new Float32Array(128));
    const x = createStorage(gpu, 'x', 2 * 2 * 16 * 4);
    const y = createStorage(gpu, 'y', 2 * 8 * 4);
    const y2 = createStorage(gpu, 'y2', 2 * 8 * 4);
    const ok = (blocks: MatmulGroupBlock[], T = 2) => matmulGroupOp(gpu, { x, w, blocks, T });
    expect(ok([{ rows: 4, branch: 0, out: y }, { rows: 4, branch: 1, out: y, outOffset: 8 }]).entry).toBe('matmul_group_vec');
    expect(() => ok([{ rows: 4, branch: 0, out: y }, { rows: 4, branch: 1, out: y, outOffset: 7 }])).toThrow(ShapeError); // overlap
    expect(() => ok([{ rows: 4, branch: 0, out: y }, { rows: 3, branch: 1, out: y2 }])).toThrow(ShapeError); // 7 ≠ 8 rows
    expect(() => ok([{ rows: 4, branch: 0, out: y }, { rows: 4, branch: 2, out: y2 }])).toThrow(ShapeError); // x too small
    expect(() => ok([{ rows: 8, branch: 0, out: x }])).toThrow(ShapeError); // out = x
    expect(() => ok([{ rows: 8, branch: 0, out: y }], 3)).toThrow(ShapeError); // y too small
    expect(() => ok(Array.from({ length: 9 }, () => ({ rows: 1, branch: 0, out: createStorage(gpu, 'o', 64) })), 1)).toThrow(ShapeError);
    expect(() => ok([])).toThrow(ShapeError);
    expect(() => ok([{ rows: 8, branch: 0, out: y, epilogue: 'add' as never }])).toThrow(ShapeError);
    const a = uploadMatrix(gpu, 'a', 2, 16, { dtype: 'bf16', bytes: new Uint8Array(64) });
    const b = uploadMatrix(gpu, 'b', 2, 16, { dtype: 'f16', bytes: new Uint8Array(64) });
    const c = uploadMatrix(gpu, 'c', 2, 8, { dtype: 'bf16', bytes: new Uint8Array(32) });
    expect(() => concatRows(gpu, 'mixed', [a, b])).toThrow(UnsupportedDtypeError);
    expect(() => concatRows(gpu, 'cols', [a, c])).toThrow(ShapeError);
  });
});
