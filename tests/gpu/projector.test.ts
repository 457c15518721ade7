/**
 * VisualRWKV-v6.0 image rows: gridPool (CPU) and ProjectorV6 (GPU matmul with proj.weight) against the
 * `projector_v6` goldens of both RWKV-6 fixture models (image_0 tower features → grids −1, 0, 1, 8, 5 → proj → ln0),
 * plus the whole chain tower → grid −1 → proj against the e2e case's `image_rows`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checked, testGpu } from '../helpers/gpu';
import { fixturePath, readJson, tensorF32 } from '../helpers/fixtures';
import { expectClose } from '../helpers/compare';
import type { Gpu } from '../../src/engine/gpu';
import { createStorage, readF32, uploadStorage } from '../../src/engine/buffers';
import { submit } from '../../src/engine/op';
import { layerNormOp } from '../../src/kernels/layer_norm';
import { gridPool, ProjectorV6, PROJ_KEY } from '../../src/vision/projector';
import { ImageEncoder } from '../../src/vision/encoder';
import { openCheckpoint, type Checkpoint } from '../../src/weights/checkpoint';
import { nodeFileSource } from '../../src/weights/node-source';
import { toF32 } from '../../src/weights/dtype';
import { InvalidArgumentError, ShapeError, WeightsFormatError } from '../../src/errors';

/** Pooling sums ≤ 576 f32 values in f64 and rounds once, like the f64 golden rounded to f32: ≤ 1 ulp apart. */
const POOLED_TOL = 1e-6;
/** f32 GPU dot products of length D = 32 with exact bf16 weights vs the f64 golden (MANIFEST §6 measured 2.4e-6). */
const PROJECTED_TOL = 1e-5;
/** LayerNorm of those rows: the f32 error above scaled by 1/σ of a row (σ ≈ 1 here). */
const AFTER_LN0_TOL = 1e-5;
/** Tower (ORT WASM, f32) + pooling + projection vs the f64 chain (MANIFEST §6: image rows after ln0 ≤ 1e-4). */
const CHAIN_TOL = 1e-4;

const MODELS = ['rwkv6_tiny', 'rwkv6_vocab65536'] as const;
const GRIDS = [-1, 0, 1, 8, 5] as const;

interface Loaded {
  ckpt: Checkpoint;
  close(): Promise<void>;
}

async function open(model: string): Promise<Loaded> {
  const src = await nodeFileSource(fixturePath(`models/${model}/visualrwkv.pth`));
  return { ckpt: await openCheckpoint(src), close: () => src.close() };
}

/** y = LN(x; blocks.0.ln0) on the GPU, as the language model applies it to every input row. */
async function applyLn0(gpu: Gpu, ckpt: Checkpoint, rows: Float32Array, n: number, C: number): Promise<Float32Array> {
  const vec = async (k: string) => {
    const info = ckpt.tensors.get(`rwkv.blocks.0.ln0.${k}`) ?? ckpt.tensors.get(`blocks.0.ln0.${k}`);
    if (!info) throw new Error(`${ckpt.name}: no blocks.0.ln0.${k}`);
    return uploadStorage(gpu, `ln0.${k}`, toF32(await info.read()));
  };
  const x = uploadStorage(gpu, 'ln0.x', rows);
  const y = createStorage(gpu, 'ln0.y', n * C * 4);
  submit(gpu, [layerNormOp(gpu, { x, y, weight: await vec('weight'), bias: await vec('bias'), T: n, C, label: 'ln0' })]);
  return readF32(gpu, y, 0, n * C);
}

function concat(rows: Float32Array[]): Float32Array {
  const out = new Float32Array(rows.reduce((a, r) => a + r.length, 0));
  let o = 0;
  for (const r of rows) {
    out.set(r, o);
    o += r.length;
  }
  return out;
}

describe.each(MODELS)('projector_v6 goldens: %s', (model) => {
  const rel = `cases/${model}/projector_v6.safetensors`;
  const meta = readJson(`cases/${model}/projector_v6.json`);
  let gpu: Gpu;
  let loaded: Loaded;
  let proj: ProjectorV6;

  beforeAll(async () => {
    gpu = await testGpu();
    loaded = await open(model);
    proj = await checked(gpu, () => ProjectorV6.load(gpu, loaded.ckpt));
  });
  afterAll(async () => {
    proj?.destroy();
    await loaded?.close();
  });

  it.each(GRIDS)('grid %i: pooled, projected, after_ln0', async (g) => {
    const raw = tensorF32(rel, 'raw_features');
    const [tokens, D] = meta.tensors.raw_features.shape as [number, number];
    expect(proj.D).toBe(D);
    const C = proj.C;
    const pooled = gridPool(raw, tokens, D, g);
    expect(pooled.n).toBe(meta.grids[String(g)].n_tokens);
    const rp = expectClose(pooled.rows, tensorF32(rel, `grid${g}.pooled`), POOLED_TOL, `${model} grid ${g} pooled`);

    const rows = await checked(gpu, () => proj.project(pooled.rows, pooled.n));
    expect(rows.length).toBe(pooled.n);
    for (const r of rows) expect(r.length).toBe(C);
    const projected = concat(rows);
    const rj = expectClose(projected, tensorF32(rel, `grid${g}.projected`), PROJECTED_TOL, `${model} grid ${g} projected`);

    const ln = await checked(gpu, () => applyLn0(gpu, loaded.ckpt, projected, pooled.n, C));
    const rl = expectClose(ln, tensorF32(rel, `grid${g}.after_ln0`), AFTER_LN0_TOL, `${model} grid ${g} after_ln0`);
    console.log(
      `[projector] ${model} grid ${g} (${pooled.n}×${C}): pooled ${rp.maxAbs.toExponential(2)}, projected ${rj.maxAbs.toExponential(2)}, after_ln0 ${rl.maxAbs.toExponential(2)}`,
    );
  });
});

describe('projector chain and edge cases', () => {
  it('tower (ORT WASM) → grid −1 → proj matches e2e_image_{0,1} image_rows (rwkv6_vocab65536)', async () => {
    const gpu = await testGpu();
    const { ckpt, close } = await open('rwkv6_vocab65536');
    const proj = await ProjectorV6.load(gpu, ckpt);
    const enc = await ImageEncoder.create(fixturePath('vision/tiny_clip_vit_shared.onnx'));
    try {
      for (const k of [0, 1]) {
        const out = await enc.encode(tensorF32(`vision/image_${k}.clip.safetensors`, 'pixel_values'));
        const p = gridPool(out.hidden, out.tokens, out.dim, -1);
        const rows = await checked(gpu, () => proj.project(p.rows, p.n));
        const r = expectClose(concat(rows), tensorF32(`cases/rwkv6_vocab65536/e2e_image_${k}_middle_bidi.safetensors`, 'image_rows'), CHAIN_TOL, `image_${k} rows`);
        console.log(`[projector] chain image_${k}: image_rows max |Δ| = ${r.maxAbs.toExponential(2)}`);
      }
    } finally {
      await enc.dispose();
      proj.destroy();
      await close();
    }
  });

  it('an F32 proj.weight is used (rounded to bf16), giving the same rows for bf16-exact values', async () => {
    const gpu = await testGpu();
    const { ckpt, close } = await open('rwkv6_tiny');
    const info = ckpt.tensors.get(PROJ_KEY)!;
    const f32 = toF32(await info.read());
    await close();
    const shape = [...info.shape];
    const bytes = new Uint8Array(f32.buffer);
    const synthetic: Checkpoint = {
      name: 'synthetic-f32',
      format: 'safetensors',
      tensors: new Map([[PROJ_KEY, { name: PROJ_KEY, dtype: 'F32', shape, byteLength: bytes.byteLength, read: async () => ({ dtype: 'F32', shape, bytes }) }]]),
    };
    const rel = 'cases/rwkv6_tiny/projector_v6.safetensors';
    const proj = await checked(gpu, () => ProjectorV6.load(gpu, synthetic));
    try {
      const rows = await checked(gpu, () => proj.project(tensorF32(rel, 'grid8.pooled'), 65));
      expectClose(concat(rows), tensorF32(rel, 'grid8.projected'), PROJECTED_TOL, 'f32 proj.weight grid 8');
    } finally {
      proj.destroy();
    }
  });

  it('load and project errors are typed', async () => {
    const gpu = await testGpu();
    const v7 = await open('rwkv7_tiny');
    await expect(ProjectorV6.load(gpu, v7.ckpt)).rejects.toBeInstanceOf(WeightsFormatError);
    await v7.close();
    const { ckpt, close } = await open('rwkv6_tiny');
    const proj = await ProjectorV6.load(gpu, ckpt);
    const w = toF32(await ckpt.tensors.get(PROJ_KEY)!.read());
    await close();
    try {
      await expect(proj.project(new Float32Array(proj.D * 3 - 1), 3)).rejects.toBeInstanceOf(ShapeError);
      await expect(proj.project(new Float32Array(0), 0)).rejects.toBeInstanceOf(ShapeError);
      // T = 1 (vec kernel) against a CPU dot product with the same bf16 weights.
      const x = Float32Array.from({ length: proj.D }, (_, i) => Math.cos(i));
      const [row] = await checked(gpu, () => proj.project(x, 1));
      const want = Float32Array.from({ length: proj.C }, (_, o) => {
        let s = 0;
        for (let i = 0; i < proj.D; i++) s += x[i]! * w[o * proj.D + i]!;
        return s;
      });
      expectClose(row!, want, PROJECTED_TOL, 'T=1 projection');
    } finally {
      proj.destroy();
    }
  });

  it('gridPool: sizes, CLS last, and argument errors', () => {
    const side = 24;
    const tokens = side * side + 1;
    const dim = 3;
    const hidden = Float32Array.from({ length: tokens * dim }, (_, i) => Math.sin(i) * 10);
    // grid 24 (s = 1) and 13 (s = 1, floor) are the identity pooling: the same rows as grid −1.
    const all = gridPool(hidden, tokens, dim, -1);
    for (const g of [24, 13]) expect(gridPool(hidden, tokens, dim, g)).toEqual(all);
    expect(all.rows.subarray((tokens - 1) * dim)).toEqual(hidden.subarray(0, dim)); // CLS last
    expect(all.rows.subarray(0, dim)).toEqual(hidden.subarray(dim, 2 * dim)); // first patch first
    for (const [g, n] of [[0, 1], [1, 2], [2, 5], [5, 37], [7, 65], [8, 65], [12, 145]] as const) {
      const p = gridPool(hidden, tokens, dim, g);
      expect(p.n, `grid ${g}`).toBe(n);
      expect(p.rows.length).toBe(n * dim);
      expect(p.rows.subarray((n - 1) * dim)).toEqual(hidden.subarray(0, dim));
    }
    // One window by hand: grid 8 → stride 3, window (1, 2) covers patch rows 3..5, cols 6..8.
    const p8 = gridPool(hidden, tokens, dim, 8);
    for (let c = 0; c < dim; c++) {
      let s = 0;
      for (let y = 3; y < 6; y++) for (let x = 6; x < 9; x++) s += hidden[(1 + y * side + x) * dim + c]!;
      expect(p8.rows[(1 * 8 + 2) * dim + c]).toBeCloseTo(s / 9, 5);
    }
    // A smaller square grid works too (CLS + 4×4).
    expect(gridPool(new Float32Array(17 * 2), 17, 2, 2).n).toBe(5);
    expect(() => gridPool(hidden, tokens, dim, -2)).toThrow(InvalidArgumentError);
    expect(() => gridPool(hidden, tokens, dim, 25)).toThrow(InvalidArgumentError);
    expect(() => gridPool(hidden, tokens, dim, 1.5)).toThrow(InvalidArgumentError);
    expect(() => gridPool(hidden, tokens + 1, dim, -1)).toThrow(ShapeError);
    expect(() => gridPool(hidden.subarray(1), tokens, dim, -1)).toThrow(ShapeError);
  });
});
