/**
 * RWKV-6 decode op list (T ≤ 4: ln_mix_lora, ddlerp, matmul_group, wkv6_fused, output, ln_mix, matmul_group, value)
 * against the prefill list (T > 4: tiled matmuls, chunked WKV) on the rwkv6_tiny fixture: dispatch count, and the
 * same logits and state whichever list runs, for segments of 1, 2, 3 and 4 rows (token tiles 1, 2, 4).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { testGpu, checked } from '../helpers/gpu';
import { fixturePath, tensorF32, tensorI32 } from '../helpers/fixtures';
import { expectClose } from '../helpers/compare';
import { nodeFileSource } from '../../src/weights/node-source';
import { openCheckpoint } from '../../src/weights/checkpoint';
import { RwkvModel } from '../../src/model/model';
import { RWKV6_DECODE_MAX_T } from '../../src/model/rwkv6';
import type { Gpu } from '../../src/engine/gpu';

/** Same math in another kernel order (δ, GroupNorm and the matvec sums round differently): f32 summation only (as state.test's split tolerance). */
const PATH_TOL = 2e-4;
/** Golden comparison tolerance for an f32 engine (issue acceptance). */
const GOLDEN_TOL = 1e-3;
/** The decode list's dispatches per layer (the task's bound). */
const DECODE_DISPATCHES = 8;

let gpu: Gpu;
let model: RwkvModel;

beforeAll(async () => {
  gpu = await testGpu();
  model = await RwkvModel.load(gpu, await openCheckpoint(await nodeFileSource(fixturePath('models/rwkv6_tiny/visualrwkv.safetensors'))));
});
afterAll(() => model?.destroy());

const ids = Array.from(tensorI32('cases/rwkv6_tiny/text_0.safetensors', 'input_ids'));

describe('RWKV-6 decode list', () => {
  it(`decodes with ${DECODE_DISPATCHES} dispatches per layer and token`, async () => {
    expect(RWKV6_DECODE_MAX_T).toBe(4);
    model.reset();
    await checked(gpu, () => model.decode(ids[0]!));
    expect(model.dispatchesPerLayerToken).toBe(DECODE_DISPATCHES);
  });

  it('segments of 1–4 rows (decode list) equal one prefill (prefill list): logits and state', async () => {
    model.reset();
    const whole = (await model.prefill(ids))!;
    expectClose(whole, tensorF32('cases/rwkv6_tiny/text_0.safetensors', 'logits_last'), GOLDEN_TOL, 'prefill vs golden');
    const wholeState = await model.state.read();
    model.reset();
    const sizes = [1, 2, 3, 4];
    let last: Float32Array | null = null;
    await checked(gpu, async () => {
      for (let i = 0, k = 0; i < ids.length; k++) {
        const n = Math.min(sizes[k % sizes.length]!, ids.length - i);
        last = await model.prefill(ids.slice(i, i + n));
        i += n;
      }
    });
    expectClose(last!, whole, PATH_TOL, 'segments of 1–4 rows vs one prefill');
    const st = await model.state.read();
    st.forEach((l, i) => {
      expectClose(l.att, wholeState[i]!.att, PATH_TOL, `layer ${i} att_x`);
      expectClose(l.ffn, wholeState[i]!.ffn, PATH_TOL, `layer ${i} ffn_x`);
      expectClose(l.wkv, wholeState[i]!.wkv, PATH_TOL, `layer ${i} wkv`);
    });
  });
});
