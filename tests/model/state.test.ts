/**
 * RNN-state properties on the GPU engine: prefill(a+b) ≡ prefill(a); prefill(b); snapshot → continue ≡ uninterrupted;
 * segment size does not change results; decode after prefill equals the golden.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { testGpu } from '../helpers/gpu';
import { fixturePath, tensorF32, tensorI32 } from '../helpers/fixtures';
import { expectClose } from '../helpers/compare';
import { nodeFileSource } from '../../src/weights/node-source';
import { openCheckpoint } from '../../src/weights/checkpoint';
import { RwkvModel } from '../../src/model/model';
import type { Gpu } from '../../src/engine/gpu';
import { InvalidArgumentError, ShapeError } from '../../src/errors';

/** Same math, different chunking: only f32 summation order changes. */
const SPLIT_TOL = 2e-4;
/** Golden comparison tolerance for an f32 engine (issue acceptance). */
const GOLDEN_TOL = 1e-3;

let gpu: Gpu;
let model: RwkvModel;
let small: RwkvModel; // maxRows 7: forces multi-segment prefill

beforeAll(async () => {
  gpu = await testGpu();
  const ckpt = await openCheckpoint(await nodeFileSource(fixturePath('models/rwkv6_tiny/visualrwkv.safetensors')));
  model = await RwkvModel.load(gpu, ckpt);
  small = await RwkvModel.load(gpu, ckpt, { maxRows: 7 });
});
afterAll(() => {
  model?.destroy();
  small?.destroy();
});

const ids = Array.from(tensorI32('cases/rwkv6_tiny/text_0.safetensors', 'input_ids'));

describe('RWKV-6 state', () => {
  it('one-shot prefill matches the golden last logits and final state', async () => {
    model.reset();
    const logits = (await model.prefill(ids))!;
    expectClose(logits, tensorF32('cases/rwkv6_tiny/text_0.safetensors', 'logits_last'), GOLDEN_TOL, 'logits_last');
    const st = await model.state.read();
    for (let i = 0; i < 4; i++) {
      expectClose(st[i]!.att, tensorF32('cases/rwkv6_tiny/text_0.safetensors', `state.${i}.att_x`), 1e-4, `state.${i}.att_x`);
      expectClose(st[i]!.wkv, tensorF32('cases/rwkv6_tiny/text_0.safetensors', `state.${i}.wkv`), 1e-3, `state.${i}.wkv`);
      expectClose(st[i]!.ffn, tensorF32('cases/rwkv6_tiny/text_0.safetensors', `state.${i}.ffn_x`), 1e-4, `state.${i}.ffn_x`);
    }
  });

  it('prefill(a+b) ≡ prefill(a); prefill(b), and multi-segment prefill ≡ one segment', async () => {
    model.reset();
    const whole = (await model.prefill(ids))!;
    for (const cut of [1, 5, 13, 23]) {
      model.reset();
      await model.prefill(ids.slice(0, cut), { logits: false });
      const split = (await model.prefill(ids.slice(cut)))!;
      expectClose(split, whole, SPLIT_TOL, `split at ${cut}`);
    }
    small.reset();
    expectClose((await small.prefill(ids))!, whole, SPLIT_TOL, 'segments of 7 rows');
    // token by token (decode path) equals prefill
    model.reset();
    let last: Float32Array | null = null;
    for (const id of ids) last = await model.decode(id);
    expectClose(last!, whole, SPLIT_TOL, 'token-by-token');
  });

  it('snapshot → continue ≡ uninterrupted; restore rewinds', async () => {
    model.reset();
    await model.prefill(ids.slice(0, 10), { logits: false });
    const snap = model.state.snapshot();
    const a = (await model.prefill(ids.slice(10)))!;
    await model.prefill([1, 2, 3]); // diverge
    model.state.copyFrom(snap);
    const b = (await model.prefill(ids.slice(10)))!;
    expect(Array.from(b)).toEqual(Array.from(a));
    snap.destroy();
  });

  it('rejects bad inputs with typed errors and stays usable', async () => {
    await expect(model.prefill([1024])).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(model.prefill([-5])).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(model.prefill([new Float32Array(3)])).rejects.toBeInstanceOf(ShapeError);
    await expect(model.prefill([])).rejects.toBeInstanceOf(InvalidArgumentError);
    model.reset();
    expectClose((await model.prefill(ids))!, tensorF32('cases/rwkv6_tiny/text_0.safetensors', 'logits_last'), GOLDEN_TOL, 'after errors');
  });
});
