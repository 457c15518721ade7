/**
 * The benchmark's synthetic RWKV-6 checkpoint: every key the model's config reader wants, with the right shapes
 * (read back by readModelConfig), finite values in the intended ranges, deterministic for a seed, and the lazy and
 * in-memory safetensors storages byte-identical.
 */
import { describe, expect, test } from 'vitest';
import {
  generateBf16,
  rwkv6MatrixBytesPerToken,
  rwkv6Shapes,
  rwkv6TensorSpecs,
  syntheticRwkv6Bytes,
  syntheticRwkv6Checkpoint,
  type SyntheticRwkv6Options,
} from '../../bench/synthetic';
import { readModelConfig, expectedLmTensors } from '../../src/model/config';
import { toF32 } from '../../src/weights/dtype';
import type { Checkpoint } from '../../src/weights/checkpoint';

const SMALL: SyntheticRwkv6Options = { L: 3, C: 128, V: 300, seed: 7 };

async function allF32(ckpt: Checkpoint): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [k, info] of ckpt.tensors) out.set(k, toF32(await info.read()));
  return out;
}

function stats(x: Float32Array): { min: number; max: number; mean: number; std: number } {
  let min = Infinity;
  let max = -Infinity;
  let s = 0;
  let s2 = 0;
  for (const v of x) {
    min = Math.min(min, v);
    max = Math.max(max, v);
    s += v;
    s2 += v * v;
  }
  const mean = s / x.length;
  return { min, max, mean, std: Math.sqrt(Math.max(0, s2 / x.length - mean * mean)) };
}

describe('synthetic RWKV-6 checkpoint', () => {
  test('default sizes follow the spec (H = C/64, F = ⌊3.5C/32⌋·32, R_m 32, R_d 64)', () => {
    expect(rwkv6Shapes({ L: 12, C: 768, V: 65536 })).toEqual({ L: 12, C: 768, H: 12, N: 64, F: 2688, V: 65536, R_m: 32, R_d: 64 });
    expect(rwkv6Shapes({ L: 24, C: 2048, V: 65536 }).F).toBe(7168);
    expect(() => rwkv6Shapes({ L: 1, C: 100, V: 10 })).toThrow(RangeError); // C/64 is not an integer
  });

  for (const storage of ['safetensors', 'lazy'] as const) {
    for (const prefix of ['', 'rwkv.']) {
      test(`${storage} storage, prefix '${prefix}': readModelConfig accepts it and every key has the expected shape`, async () => {
        const ckpt = await syntheticRwkv6Checkpoint({ ...SMALL, storage, prefix, R_m: 8, R_d: 16 });
        const cfg = readModelConfig(ckpt);
        expect(cfg).toMatchObject({ arch: 'rwkv6', prefix, L: 3, C: 128, H: 2, N: 64, F: 448, V: 300, loraMix: 8, loraDecay: 16, weightDtype: 'BF16' });
        const expected = expectedLmTensors(cfg);
        expect(ckpt.tensors.size).toBe(expected.length);
        for (const e of expected) {
          const info = ckpt.tensors.get(prefix + e.name);
          expect(info, e.name).toBeDefined();
          expect(info!.shape, e.name).toEqual(e.shape);
          expect(info!.dtype).toBe('BF16');
          expect(info!.byteLength).toBe(2 * e.shape.reduce((a, b) => a * b, 1));
        }
      });
    }
  }

  test('values are finite and scaled like a real model', async () => {
    const ckpt = await syntheticRwkv6Checkpoint({ ...SMALL, storage: 'lazy' });
    const t = await allF32(ckpt);
    for (const [k, v] of t) expect(v.filter((x) => !Number.isFinite(x)).length, k).toBe(0);
    const C = 128;
    // LayerNorm / GroupNorm weights ≈ 1, biases ≈ 0.
    for (const k of ['blocks.0.ln0.weight', 'blocks.1.ln1.weight', 'blocks.2.att.ln_x.weight', 'ln_out.weight']) {
      const s = stats(t.get(k)!);
      expect(s.min, k).toBeGreaterThanOrEqual(0.79);
      expect(s.max, k).toBeLessThanOrEqual(1.21);
    }
    expect(Math.max(...t.get('blocks.1.ln2.bias')!.map(Math.abs))).toBeLessThanOrEqual(0.051);
    // Linear weights ≈ N(0, 1/√in): [out, in] layout, in = C or F.
    const sq = stats(t.get('blocks.1.att.key.weight')!);
    expect(Math.abs(sq.mean)).toBeLessThan(0.01);
    expect(sq.std).toBeGreaterThan(0.9 / Math.sqrt(C));
    expect(sq.std).toBeLessThan(1.1 / Math.sqrt(C));
    const fv = stats(t.get('blocks.1.ffn.value.weight')!); // [C, F], in = F = 448
    expect(fv.std).toBeGreaterThan(0.9 / Math.sqrt(448));
    expect(fv.std).toBeLessThan(1.1 / Math.sqrt(448));
    // time_decay ramps from −6 to −1 over the channels.
    const td = t.get('blocks.2.att.time_decay')!;
    expect(td[0]).toBeCloseTo(-6, 1);
    expect(td[C - 1]).toBeCloseTo(-1, 1);
    for (let i = 1; i < C; i++) expect(td[i]!).toBeGreaterThanOrEqual(td[i - 1]!);
    // time_faaaa small, time_maa_* in [0, 1].
    const u = stats(t.get('blocks.0.att.time_faaaa')!);
    expect(u.min).toBeGreaterThanOrEqual(-0.11);
    expect(u.max).toBeLessThanOrEqual(0.61);
    for (const k of ['x', 'w', 'k', 'v', 'r', 'g'].map((b) => `blocks.0.att.time_maa_${b}`).concat(['blocks.1.ffn.time_maa_k', 'blocks.1.ffn.time_maa_r'])) {
      const s = stats(t.get(k)!);
      expect(s.min, k).toBeGreaterThanOrEqual(0);
      expect(s.max, k).toBeLessThanOrEqual(1);
      expect(s.std, k).toBeGreaterThan(0.2); // spread over [0, 1], not constant
    }
  });

  test('deterministic for a seed, different for another seed; lazy and safetensors bytes are identical', async () => {
    const a = await syntheticRwkv6Checkpoint({ ...SMALL, storage: 'lazy' });
    const b = await syntheticRwkv6Checkpoint({ ...SMALL, storage: 'safetensors' });
    const c = await syntheticRwkv6Checkpoint({ ...SMALL, storage: 'lazy', seed: 8 });
    let differs = 0;
    for (const [k, info] of a.tensors) {
      const x = (await info.read()).bytes;
      expect(Buffer.from((await info.read()).bytes).equals(Buffer.from(x)), `${k} re-read`).toBe(true);
      expect(Buffer.from((await b.tensors.get(k)!.read()).bytes).equals(Buffer.from(x)), `${k} lazy vs safetensors`).toBe(true);
      if (!Buffer.from((await c.tensors.get(k)!.read()).bytes).equals(Buffer.from(x))) differs++;
    }
    // Random tensors change with the seed (the deterministic ramps time_decay / time_faaaa do not).
    expect(differs).toBe(a.tensors.size - 2 * SMALL.L);
    expect(b.format).toBe('safetensors');
  });

  test('big tensors are generated in chunks with a continuous stream (no seam at the chunk boundary)', () => {
    const spec = { name: 'head.weight', shape: [3, 1 << 20], init: { kind: 'normal' as const, std: 1 } };
    const all = generateBf16(spec, 3);
    const small = generateBf16({ ...spec, shape: [1 << 20] }, 3);
    expect(Buffer.from(all.buffer, 0, 2 << 20).equals(Buffer.from(small.buffer))).toBe(true);
    // The second chunk is not a repeat of the first.
    expect(Buffer.from(all.buffer, 2 << 20, 2 << 20).equals(Buffer.from(small.buffer))).toBe(false);
  });

  test('byte counts: total size and 16-bit matrix bytes streamed per decoded token', () => {
    const s = rwkv6Shapes({ L: 12, C: 768, V: 65536 });
    const specs = rwkv6TensorSpecs(s);
    const total = specs.reduce((a, t) => a + 2 * t.shape.reduce((x, y) => x * y, 1), 0);
    expect(syntheticRwkv6Bytes({ L: 12, C: 768, V: 65536 })).toBe(total);
    // Matrices = every tensor with two dims > 1 except the embedding and time_faaaa (a [H, N] vector).
    const matrices = specs.filter((t) => t.shape.filter((d) => d > 1).length >= 2 && t.name !== 'emb.weight' && !t.name.endsWith('time_faaaa'));
    expect(rwkv6MatrixBytesPerToken(s)).toBe(matrices.reduce((a, t) => a + 2 * t.shape.reduce((x, y) => x * y, 1), 0));
    expect(rwkv6MatrixBytesPerToken(s)).toBe(292_945_920);
  });
});
