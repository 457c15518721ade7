import { describe, expect, it } from 'vitest';
import { testGpu, checked } from '../helpers/gpu';
import { uploadStorage, createStorage, readF32 } from '../../src/engine/buffers';
import { submit, type KernelOp } from '../../src/engine/op';
import { preprocess } from '../../src/engine/wgsl';

const SHADER = {
  name: 'engine_test',
  code: `
#include "common"
override SCALE: f32 = 1.0;
@group(0) @binding(0) var<storage, read> w: array<u32>;       // (n/2) packed 16-bit
@group(0) @binding(1) var<storage, read_write> y: array<f32>; // (n)
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  if (g.x >= arrayLength(&w)) { return; }
  let v = unpack_w(w[g.x]);
  y[2u * g.x] = v.x * SCALE;
  y[2u * g.x + 1u] = v.y * SCALE;
}`,
};

describe('engine', () => {
  it('finds a WebGPU adapter (a missing adapter fails, it is not skipped)', async () => {
    const gpu = await testGpu();
    expect(gpu.device).toBeTruthy();
    expect(gpu.limits.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(128 << 20);
  });

  it('preprocesses #ifdef/#else and string defines', () => {
    const code = '#ifdef A\nx\n#else\ny\n#endif\nT z';
    expect(preprocess(code, { A: true, T: 'f32' }).trim()).toBe('x\nf32 z');
    expect(preprocess(code, { T: 'u32' }).trim()).toBe('y\nu32 z');
  });

  for (const f16 of [false, true]) {
    it(`unpacks ${f16 ? 'f16' : 'bf16'} weights packed in u32, with an override`, async () => {
      const gpu = await testGpu();
      // bf16 1.5 = 0x3fc0, -2 = 0xc000 ; f16 1.5 = 0x3e00, -2 = 0xc000
      const words = f16 ? new Uint32Array([0xc000_3e00, 0x3c00_0000]) : new Uint32Array([0xc000_3fc0, 0x3f80_0000]);
      const y = await checked(gpu, async () => {
        const w = uploadStorage(gpu, 'w', words);
        const out = createStorage(gpu, 'y', 32); // w is padded to 4 words → 8 outputs
        const op: KernelOp = {
          kind: 'kernel', label: 'unpack', shader: SHADER, entry: 'main',
          defines: f16 ? { W_F16: true } : undefined, overrides: { SCALE: 2 },
          layout: ['read', 'rw'], bindings: [w, out], workgroups: [1],
        };
        submit(gpu, [op]);
        return readF32(gpu, out, 0, 4);
      });
      expect(Array.from(y)).toEqual([3, -4, 0, 2]);
    });
  }
});
