/**
 * Devices whose largest storage buffer is smaller than a model's tensors (released 1B6–7B heads and embeddings are
 * 256–512 MiB; WebGPU guarantees only 128 MiB): the embedding and the head load as row blocks and give the same
 * logits as whole matrices; any other tensor too large is refused with DeviceLimitError before anything is uploaded,
 * and the GPU stays usable. Simulated with LoadModelOptions.maxBindingBytes on the 65536-vocabulary fixture
 * (emb and head 4 MiB each: 1 MiB blocks → 4 blocks of 16384 rows).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checked, testGpu } from '../helpers/gpu';
import { fixturePath } from '../helpers/fixtures';
import { nodeFileSource } from '../../src/weights/node-source';
import { openCheckpoint } from '../../src/weights/checkpoint';
import { RwkvModel } from '../../src/model/model';
import { generateGreedy } from '../../src/model/generate';
import { DeviceLimitError } from '../../src/errors';
import type { Gpu } from '../../src/engine/gpu';

const MODEL = 'models/rwkv6_vocab65536/visualrwkv.pth';
/** The same kernels per row on the same inputs: the split changes which dispatch computes a row, not how. */
const SPLIT_TOL = 0;
const PROMPT = [3319, 59, 1047, 11, 261, 24281, 59, 33, 2067, 65535, 0, 47];

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => {
  gpu?.device.destroy();
});

const open = async () => openCheckpoint(await nodeFileSource(fixturePath(MODEL)));

describe('storage-binding limits', () => {
  it('emb and head in 1 MiB row blocks: the same greedy ids and logits as whole matrices', async () => {
    const whole = await RwkvModel.load(gpu, await open(), { maxRows: 16 });
    const split = await RwkvModel.load(gpu, await open(), { maxRows: 16, maxBindingBytes: 1 << 20 });
    try {
      const labels = split.opsForProfiling(1).map((o) => o.label);
      expect(labels.filter((l) => /^(emb|head)\.\d+$/.test(l))).toEqual(['emb.0', 'emb.1', 'emb.2', 'emb.3', 'head.0', 'head.1', 'head.2', 'head.3']);
      split.reset();
      // 0 and 65535 are the first and last rows (first and last block); PROMPT spans one 16-row segment.
      const a = await checked(gpu, () => generateGreedy(whole, PROMPT, { maxTokens: 6 }));
      const b = await checked(gpu, () => generateGreedy(split, PROMPT, { maxTokens: 6 }));
      expect(b.ids).toEqual(a.ids);
      for (let i = 0; i < a.logits.length; i++) {
        let worst = 0;
        for (let j = 0; j < a.logits[i]!.length; j++) worst = Math.max(worst, Math.abs(a.logits[i]![j]! - b.logits[i]![j]!));
        expect(worst, `step ${i}`).toBeLessThanOrEqual(SPLIT_TOL);
      }
    } finally {
      whole.destroy();
      split.destroy();
    }
  });

  it('a layer matrix above the limit → DeviceLimitError naming it, before any upload; the device stays usable', async () => {
    // 4 KiB: e.g. the 96 × 32 channel-mix matrices (6 KiB as bf16) do not fit and cannot be split.
    const err = await RwkvModel.load(gpu, await open(), { maxBindingBytes: 4096 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeviceLimitError);
    expect((err as Error).message).toMatch(/tensor 'rwkv\.blocks\.\d+\.[\w.]+' \[[\d,]+\] needs a [\d.]+ KiB GPU buffer, but this device's largest storage buffer is 4\.0 KiB/);
    const ok = await RwkvModel.load(gpu, await open(), { maxRows: 16 });
    try {
      const r = await checked(gpu, () => generateGreedy(ok, PROMPT.slice(0, 4), { maxTokens: 2 }));
      expect(r.ids).toHaveLength(2);
    } finally {
      ok.destroy();
    }
  });
});
