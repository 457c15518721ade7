import { describe, expect, it } from 'vitest';
import { testGpu, checked } from '../helpers/gpu';
import { readF32, uploadStorage } from '../../src/engine/buffers';
import { submit } from '../../src/engine/op';
import { embedOp, reverseRowsOp } from '../../src/kernels/rows';
import { uploadMatrix, uploadMatrixBlocks } from '../../src/kernels/types';
import { ShapeError } from '../../src/errors';
import { embedRef, reverseRowsRef } from '../reference/rows';
import { random16, randomF32, rng } from '../reference/matmul';

/** Both ops only move or widen 16-bit values, which is exact in f32. */
const EXACT = 0;

function expectExact(got: Float32Array, want: ArrayLike<number>, C: number, what: string): void {
  expect(got.length, `${what}: length`).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    if (Math.abs(got[i]! - want[i]!) > EXACT || Number.isNaN(got[i]!)) {
      expect.fail(`${what}: index ${i} (row ${Math.floor(i / C)}, col ${i % C}) got ${got[i]}, want ${want[i]}`);
    }
  }
}

describe('rows: embed', () => {
  const cases = [
    { name: 'T=1 V=50 C=64 bf16', T: 1, V: 50, C: 64, dtype: 'bf16' as const },
    { name: 'T=300 V=77 C=34 f16, negative ids untouched, ids ≥ V zero', T: 300, V: 77, C: 34, dtype: 'f16' as const },
    { name: 'T=40 V=1000 C=2048 bf16', T: 40, V: 1000, C: 2048, dtype: 'bf16' as const },
  ];
  for (const [ci, cs] of cases.entries()) {
    it(cs.name, async () => {
      const gpu = await testGpu();
      const r = rng(300 + ci);
      const { T, V, C } = cs;
      const emb = random16(r, cs.dtype, V, C, 4);
      const ids = new Int32Array(T);
      for (let t = 0; t < T; t++) {
        const u = r();
        // Mostly valid ids; some image rows (−1, −200) and, in the long case, some out-of-range ids.
        ids[t] = T > 1 && u < 0.2 ? -1 - Math.floor(r() * 200) : T > 100 && u < 0.25 ? V + Math.floor(r() * 5) : Math.floor(r() * V);
      }
      if (T > 1) {
        ids[0] = V - 1; // last vocabulary row
        ids[T - 1] = -1;
      }
      const xBefore = randomF32(r, T * C, -9, 9); // stands for image rows written beforehand
      const got = await checked(gpu, async () => {
        const x = uploadStorage(gpu, 'x', xBefore);
        const op = embedOp(gpu, {
          ids: uploadStorage(gpu, 'ids', ids),
          emb: uploadMatrix(gpu, 'emb', V, C, { dtype: cs.dtype, bytes: emb.bytes }),
          x, T, label: `embed ${cs.name}`,
        });
        submit(gpu, [op]);
        return readF32(gpu, x, 0, T * C);
      });
      expectExact(got, embedRef(ids, emb.values, V, C, xBefore), C, `embed ${cs.name}`);
    });
  }
});

describe('rows: embed from row blocks (an embedding larger than one storage binding)', () => {
  // V = 1000 rows of C = 64 bf16 (128 B each) in blocks of ≤ 16 KiB: 128 rows per block (a multiple of 64), 8 blocks,
  // the last one short (104 rows). Ids hit every block, the first and last row of blocks, image rows, ids ≥ V.
  it('V=1000 C=64 bf16 in 8 blocks ≡ the reference (each row written once, by its block)', async () => {
    const gpu = await testGpu();
    const r = rng(350);
    const T = 257, V = 1000, C = 64;
    const emb = random16(r, 'bf16', V, C, 4);
    const ids = new Int32Array(T);
    for (let t = 0; t < T; t++) {
      const u = r();
      ids[t] = u < 0.1 ? -1 : u < 0.15 ? V + Math.floor(r() * 3) : Math.floor(r() * V);
    }
    [0, 127, 128, 255, 256, 895, 896, 999].forEach((id, k) => (ids[k + 1] = id));
    const xBefore = randomF32(r, T * C, -9, 9);
    const blocks = uploadMatrixBlocks(gpu, 'emb', V, C, { dtype: 'bf16', bytes: emb.bytes }, 16 * 1024);
    expect(blocks.map((b) => [b.row0, b.m.rows])).toEqual([0, 128, 256, 384, 512, 640, 768, 896].map((r0) => [r0, r0 === 896 ? 104 : 128]));
    const got = await checked(gpu, async () => {
      const x = uploadStorage(gpu, 'x', xBefore);
      const idsBuf = uploadStorage(gpu, 'ids', ids);
      submit(gpu, blocks.map((b, k) => embedOp(gpu, { ids: idsBuf, emb: b.m, row0: b.row0, last: k === blocks.length - 1, x, T })));
      return readF32(gpu, x, 0, T * C);
    });
    expectExact(got, embedRef(ids, emb.values, V, C, xBefore), C, 'embed from blocks');
  });

  it('a matrix that fits is one block; a row larger than the block size is refused', async () => {
    const gpu = await testGpu();
    const bytes = new Uint8Array(10 * 64 * 2);
    expect(uploadMatrixBlocks(gpu, 'm', 10, 64, { dtype: 'bf16', bytes }, 1280).map((b) => [b.row0, b.m.rows])).toEqual([[0, 10]]);
    expect(uploadMatrixBlocks(gpu, 'm', 10, 64, { dtype: 'bf16', bytes }, 1279).map((b) => [b.row0, b.m.rows])).toEqual([[0, 9], [9, 1]]);
    expect(() => uploadMatrixBlocks(gpu, 'm', 10, 64, { dtype: 'bf16', bytes }, 100)).toThrow(ShapeError);
  });
});

describe('rows: reverse', () => {
  const cases = [
    { name: 'odd count 577 at start 3, C=34', R: 590, start: 3, count: 577, C: 34 },
    { name: 'even count 576 at start 0, C=64', R: 577, start: 0, count: 576, C: 64 },
    { name: 'count 2, C=2048', R: 5, start: 1, count: 2, C: 2048 },
    { name: 'count 1 (no-op)', R: 4, start: 2, count: 1, C: 8 },
    { name: 'count 0 (no-op)', R: 4, start: 4, count: 0, C: 8 },
  ];
  for (const [ci, cs] of cases.entries()) {
    it(cs.name, async () => {
      const gpu = await testGpu();
      const x0 = randomF32(rng(400 + ci), cs.R * cs.C, -5, 5);
      const got = await checked(gpu, async () => {
        const x = uploadStorage(gpu, 'x', x0);
        submit(gpu, [reverseRowsOp(gpu, { x, start: cs.start, count: cs.count, C: cs.C, label: `reverse ${cs.name}` })]);
        return readF32(gpu, x, 0, cs.R * cs.C);
      });
      expectExact(got, reverseRowsRef(x0, cs.start, cs.count, cs.C), cs.C, `reverse ${cs.name}`);
    });
  }

  it('reversing twice restores the rows', async () => {
    const gpu = await testGpu();
    const x0 = randomF32(rng(9), 20 * 16);
    const got = await checked(gpu, async () => {
      const x = uploadStorage(gpu, 'x', x0);
      const op = () => reverseRowsOp(gpu, { x, start: 2, count: 17, C: 16 });
      submit(gpu, [op(), op()]);
      return readF32(gpu, x, 0, 20 * 16);
    });
    expectExact(got, x0, 16, 'reverse twice');
  });

  it('rejects bad shapes', async () => {
    const gpu = await testGpu();
    const x = uploadStorage(gpu, 'x', new Float32Array(4 * 8));
    expect(() => reverseRowsOp(gpu, { x, start: 2, count: 3, C: 8 })).toThrow(ShapeError);
    expect(() => reverseRowsOp(gpu, { x, start: 0, count: 2, C: 7 })).toThrow(ShapeError);
    const emb = uploadMatrix(gpu, 'emb', 3, 8, new Float32Array(24));
    const ids = uploadStorage(gpu, 'ids', new Int32Array(4));
    expect(() => embedOp(gpu, { ids, emb, x, T: 5 })).toThrow(ShapeError);
  });
});
