/** v7.00 projector (context gating → o_proj → ln_v, then ln0) against the projector_v7 goldens. */
import { describe, it } from 'vitest';
import { testGpu, checked } from '../helpers/gpu';
import { fixturePath, tensorF32 } from '../helpers/fixtures';
import { expectClose } from '../helpers/compare';
import { nodeFileSource } from '../../src/weights/node-source';
import { openCheckpoint } from '../../src/weights/checkpoint';
import { ProjectorV7, adaptivePool } from '../../src/vision/projector_v7';
import { createStorage, readF32, uploadStorage } from '../../src/engine/buffers';
import { submit } from '../../src/engine/op';
import { layerNormOp } from '../../src/kernels/layer_norm';
import { toF32 } from '../../src/weights/dtype';

/** Pooling is an f64 mean rounded once: matches the f64 golden rounded to f32 up to 1 ulp. */
const POOL_TOL = 1e-6;
/** MANIFEST §6: projector outputs ≤ 2.4e-6 between f32 implementations; 1e-5 leaves room for GPU summation order. */
const PROJ_TOL = 1e-5;

describe('ProjectorV7', () => {
  for (const n of [16, 64]) {
    it(`tokens${n}: pooled, projected and after ln0 match the goldens`, async () => {
      const gpu = await testGpu();
      const st = 'cases/rwkv7_tiny/projector_v7.safetensors';
      const src = await nodeFileSource(fixturePath('models/rwkv7_tiny/visualrwkv.pth'));
      const ckpt = await openCheckpoint(src);
      const proj = await ProjectorV7.load(gpu, ckpt);
      const raw = tensorF32(st, 'raw_features');
      expectClose(adaptivePool(raw, 1024, 48, n), tensorF32(st, `tokens${n}.pooled`), POOL_TOL, 'pooled');
      const rows = await checked(gpu, () => proj.project(raw, 1024, n));
      const flat = new Float32Array(n * proj.C);
      rows.forEach((r, i) => flat.set(r, i * proj.C));
      expectClose(flat, tensorF32(st, `tokens${n}.projected`), PROJ_TOL, 'projected');
      // ln0 as the LM applies it to every input row
      const x = uploadStorage(gpu, 'x', flat);
      const y = createStorage(gpu, 'y', flat.byteLength);
      const w = uploadStorage(gpu, 'ln0.w', toF32(await ckpt.tensors.get('rwkv.blocks.0.ln0.weight')!.read()));
      const b = uploadStorage(gpu, 'ln0.b', toF32(await ckpt.tensors.get('rwkv.blocks.0.ln0.bias')!.read()));
      await checked(gpu, () => submit(gpu, [layerNormOp(gpu, { x, y, weight: w, bias: b, T: n, C: proj.C })]));
      expectClose(await readF32(gpu, y, 0, flat.length), tensorF32(st, `tokens${n}.after_ln0`), PROJ_TOL, 'after ln0');
      proj.destroy();
      await src.close();
    });
  }
});
