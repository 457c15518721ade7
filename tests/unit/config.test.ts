/** ModelConfig from tensor shapes: fixture values, prefix/layout detection, and refusal of missing/mis-shaped keys. */
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { UnsupportedDtypeError, WeightsFormatError } from '../../src/errors';
import { expectedLmTensors, lmTensorName, readModelConfig, type ModelConfig } from '../../src/model/config';
import { openCheckpoint, type Checkpoint, type TensorInfo } from '../../src/weights/checkpoint';
import { numel, type DType } from '../../src/weights/dtype';
import { writeSafetensors } from '../../src/weights/safetensors';
import { bytesSource } from '../../src/weights/source';
import { fixturePath, readJson } from '../helpers/fixtures';

const MODELS = ['rwkv6_tiny', 'rwkv7_tiny', 'rwkv6_vocab65536'];

async function open(model: string, ext: 'pth' | 'safetensors'): Promise<Checkpoint> {
  const rel = `models/${model}/visualrwkv.${ext}`;
  return openCheckpoint(bytesSource(new Uint8Array(readFileSync(fixturePath(rel))), rel));
}

/** A checkpoint of metadata only (read() is never called by readModelConfig). */
function fake(tensors: { name: string; dtype: DType; shape: number[] }[], name = 'fake.pth'): Checkpoint {
  const m = new Map<string, TensorInfo>();
  for (const t of tensors) {
    m.set(t.name, { ...t, byteLength: numel(t.shape) * 2, read: () => Promise.reject(new Error('metadata only')) });
  }
  return { name, format: 'pth', tensors: m };
}

/** The tensors of a checkpoint as plain metadata, for editing. */
const meta = (c: Checkpoint) => [...c.tensors.values()].map(({ name, dtype, shape }) => ({ name, dtype, shape: [...shape] }));

function expectFormatError(fn: () => unknown, ...parts: (string | RegExp)[]): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, 'expected a WeightsFormatError').toBeInstanceOf(WeightsFormatError);
  for (const p of parts) expect((err as Error).message).toMatch(p instanceof RegExp ? p : new RegExp(p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
}

describe('fixture configs', () => {
  for (const m of MODELS) {
    for (const ext of ['pth', 'safetensors'] as const) {
      it(`${m}.${ext} matches config.json`, async () => {
        const want = readJson(`models/${m}/config.json`);
        const cfg = readModelConfig(await open(m, ext));
        expect(cfg.arch).toBe(want.version === 6 ? 'rwkv6' : 'rwkv7');
        expect(cfg.prefix).toBe('rwkv.');
        expect([cfg.L, cfg.C, cfg.H, cfg.N, cfg.V, cfg.F]).toEqual([want.n_layer, want.n_embd, want.n_head, want.head_size, want.vocab_size, want.dim_ffn]);
        if (cfg.arch === 'rwkv6') {
          expect([cfg.loraMix, cfg.loraDecay]).toEqual([want.lora_dims.time_maa, want.lora_dims.time_decay]);
          expect([cfg.loraW, cfg.loraA, cfg.loraV, cfg.loraG]).toEqual([0, 0, 0, 0]);
          expect(cfg.vision).toBe('clip');
          expect(cfg.projector.kind).toBe('linear');
        } else {
          expect([cfg.loraW, cfg.loraA, cfg.loraV, cfg.loraG]).toEqual([want.lora_dims.w, want.lora_dims.a, want.lora_dims.v, want.lora_dims.g]);
          expect([cfg.loraMix, cfg.loraDecay]).toEqual([0, 0]);
          expect(cfg.vision).toBe('none'); // v7 fixtures carry no vit.* (the real tower is SAM+DINOv2+SigLIP)
          expect(cfg.projector).toEqual({ kind: 'gated_v7', inDim: want.vision.D_vision });
        }
        expect(cfg.weightDtype).toBe('BF16');
      });
    }

    it(`${m}: the LM keys of the file are exactly expectedLmTensors (no more, no fewer)`, async () => {
      const c = await open(m, 'safetensors');
      const cfg = readModelConfig(c);
      const got = [...c.tensors.values()].filter((t) => t.name.startsWith('rwkv.')).map((t) => `${t.name} [${t.shape}]`).sort();
      const want = expectedLmTensors(cfg).map((e) => `${lmTensorName(cfg, e.name)} [${e.shape}]`).sort();
      expect(got).toEqual(want);
    });
  }

  it('v6 projector in-dim is read from proj.weight', async () => {
    const c = await open('rwkv6_tiny', 'pth');
    expect(readModelConfig(c).projector).toEqual({ kind: 'linear', inDim: c.tensors.get('proj.weight')!.shape[1] });
  });
});

describe('layouts: full, split _rwkv.pth, bare LM', () => {
  for (const m of ['rwkv6_tiny', 'rwkv7_tiny']) {
    it(`${m}: LM keys without prefix (built with writeSafetensors) give the same config and bytes`, async () => {
      const full = await open(m, 'pth');
      const fullCfg = readModelConfig(full);
      const lm: Parameters<typeof writeSafetensors>[0] = {};
      for (const [name, t] of full.tensors) {
        if (!name.startsWith('rwkv.')) continue;
        const h = await t.read();
        lm[name.slice('rwkv.'.length)] = { dtype: h.dtype, shape: h.shape, data: h.bytes };
      }
      const split = await openCheckpoint(bytesSource(writeSafetensors(lm), 'model_rwkv.safetensors'));
      const cfg = readModelConfig(split);
      expect(cfg).toEqual({ ...fullCfg, prefix: '', vision: 'none', projector: { kind: 'none' } });
      const key = 'blocks.1.att.output.weight';
      expect((await split.tensors.get(key)!.read()).bytes).toEqual((await full.tensors.get(lmTensorName(fullCfg, key))!.read()).bytes);
      expect(lmTensorName(cfg, key)).toBe(key);
    });
  }

  it('bare RWKV-7 LM in released key order, with the unused blocks.0.att.v0/v1/v2, and F16 weights', async () => {
    const full = meta(await open('rwkv7_tiny', 'pth'));
    const lm = full.filter((t) => t.name.startsWith('rwkv.')).map((t) => ({ ...t, name: t.name.slice(5), dtype: 'F16' as DType }));
    lm.reverse(); // key order must not matter
    const C = 128;
    lm.push({ name: 'blocks.0.att.v0', dtype: 'F16', shape: [1, 1, C] }, { name: 'blocks.0.att.v1', dtype: 'F16', shape: [C, 32] }, { name: 'blocks.0.att.v2', dtype: 'F16', shape: [32, C] });
    const cfg = readModelConfig(fake(lm, 'RWKV-x070-World.pth'));
    expect(cfg).toMatchObject({ arch: 'rwkv7', prefix: '', L: 4, C: 128, H: 2, N: 64, F: 512, V: 1024, loraV: 32, weightDtype: 'F16', vision: 'none' });
    // blocks.0 v0/v1/v2 are not in the expected list
    expect(expectedLmTensors(cfg).some((e) => /^blocks\.0\.att\.v[012]$/.test(e.name))).toBe(false);
    expect(expectedLmTensors(cfg).some((e) => e.name === 'blocks.1.att.v0')).toBe(true);
  });
});

describe('missing and mis-shaped keys → WeightsFormatError naming key, expected and found', () => {
  const metas: Record<string, ReturnType<typeof meta>> = {};
  beforeAll(async () => {
    for (const m of ['rwkv6_tiny', 'rwkv7_tiny']) metas[m] = meta(await open(m, 'safetensors'));
  });
  /** A fresh copy of a fixture's tensor metadata. */
  const base = (m = 'rwkv6_tiny') => metas[m]!.map((t) => ({ ...t, shape: [...t.shape] }));

  it('missing key', async () => {
    const t = (base()).filter((x) => x.name !== 'rwkv.blocks.2.att.key.weight');
    expectFormatError(() => readModelConfig(fake(t)), 'fake.pth', "missing 'rwkv.blocks.2.att.key.weight' (expected shape [128, 128])");
  });

  it('missing last block tensor, missing head, missing v7 v1 on layer 2', async () => {
    expectFormatError(() => readModelConfig(fake((base()).filter((x) => x.name !== 'rwkv.head.weight'))), "missing 'rwkv.head.weight' (expected shape [1024, 128])");
    expectFormatError(() => readModelConfig(fake((base()).filter((x) => x.name !== 'rwkv.blocks.3.ffn.value.weight'))), "'rwkv.blocks.3.ffn.value.weight'");
    expectFormatError(() => readModelConfig(fake((base('rwkv7_tiny')).filter((x) => x.name !== 'rwkv.blocks.2.att.v1'))), "missing 'rwkv.blocks.2.att.v1' (expected shape [128, 32])");
  });

  it('wrong shapes', async () => {
    const edit = <T extends { name: string; shape: number[] }>(t: T[], name: string, shape: number[]): T[] => t.map((x) => (x.name === name ? { ...x, shape } : x));
    expectFormatError(() => readModelConfig(fake(edit(base(), 'rwkv.blocks.1.att.time_maa_w2', [5, 16, 128]))), "'rwkv.blocks.1.att.time_maa_w2' has shape [5, 16, 128], expected [5, 32, 128]");
    expectFormatError(() => readModelConfig(fake(edit(base(), 'rwkv.blocks.0.att.time_decay', [128]))), "'rwkv.blocks.0.att.time_decay' has shape [128], expected [1, 1, 128]");
    expectFormatError(() => readModelConfig(fake(edit(base(), 'rwkv.head.weight', [1000, 128]))), "'rwkv.head.weight' has shape [1000, 128], expected [1024, 128]");
    expectFormatError(() => readModelConfig(fake(edit(base(), 'proj.weight', [64, 32]))), "'proj.weight' has shape [64, 32], expected [128, 32]");
    expectFormatError(() => readModelConfig(fake(edit(base('rwkv7_tiny'), 'proj.ln_v.bias', [48]))), "'proj.ln_v.bias' has shape [48], expected [128]");
    expectFormatError(() => readModelConfig(fake(edit(base(), 'rwkv.blocks.0.att.time_faaaa', [2, 32]))), /time_faaaa' is \[2, 32\] but H·N must equal C = 128/);
    expectFormatError(() => readModelConfig(fake(edit(base(), 'rwkv.emb.weight', [1024, 128, 1]))), "'rwkv.emb.weight' has shape [1024, 128, 1], expected 2 dims");
  });

  it('several problems are listed together', async () => {
    const t = (base()).filter((x) => !x.name.startsWith('rwkv.blocks.1.'));
    expectFormatError(() => readModelConfig(fake(t)), 'rwkv.blocks.1.ln1.weight', /and \d+ more/);
  });

  it('non-float LM weights → UnsupportedDtypeError naming the key', async () => {
    const t = (base()).map((x) => (x.name === 'rwkv.blocks.0.att.time_decay' ? { ...x, dtype: 'I64' as DType } : x));
    expect(() => readModelConfig(fake(t))).toThrow(UnsupportedDtypeError);
    expect(() => readModelConfig(fake(t))).toThrow(/rwkv\.blocks\.0\.att\.time_decay' is I64/);
  });

  it('no LM, unknown architecture, mixed architectures, HD projector', async () => {
    const vis = (base()).filter((x) => !x.name.startsWith('rwkv.'));
    expectFormatError(() => readModelConfig(fake(vis, 'x_visual.pth')), 'x_visual.pth', "missing 'rwkv.emb.weight'", '_visual.pth');
    const noArch = (base()).filter((x) => !x.name.endsWith('att.time_maa_x'));
    expectFormatError(() => readModelConfig(fake(noArch)), /cannot tell the architecture/);
    const v5 = [...noArch, { name: 'rwkv.blocks.0.att.time_mix_k', dtype: 'BF16' as DType, shape: [1, 1, 128] }];
    expectFormatError(() => readModelConfig(fake(v5)), /RWKV-4\/5/);
    const both = [...(base()), { name: 'rwkv.blocks.0.att.r_k', dtype: 'BF16' as DType, shape: [2, 64] }];
    expectFormatError(() => readModelConfig(fake(both)), /both RWKV-6/);
    const hd = [...(base('rwkv7_tiny')), { name: 'proj.proj.weight', dtype: 'BF16' as DType, shape: [128, 48] }];
    expectFormatError(() => readModelConfig(fake(hd)), /HD projector/);
  });
});

describe('expectedLmTensors at released sizes (spec §2.6 parameter counts)', () => {
  const count = (cfg: ModelConfig) => expectedLmTensors(cfg).reduce((a, e) => a + numel(e.shape), 0);
  const common = { prefix: 'rwkv.', vision: 'none', projector: { kind: 'none' }, weightDtype: 'BF16', V: 65536, N: 64 } as const;
  it('v6 1.6B ≈ 1.60 B, v6 7B ≈ 7.64 B', () => {
    const v6 = { ...common, arch: 'rwkv6', loraW: 0, loraA: 0, loraV: 0, loraG: 0 } as const;
    expect(count({ ...v6, L: 24, C: 2048, H: 32, F: 7168, loraMix: 32, loraDecay: 64 }) / 1e9).toBeCloseTo(1.6, 1);
    expect(count({ ...v6, L: 32, C: 4096, H: 64, F: 14336, loraMix: 64, loraDecay: 128 }) / 1e9).toBeCloseTo(7.64, 1);
  });
  it('v7 0.1B ≈ 0.19 B, v7 1.5B ≈ 1.53 B', () => {
    const v7 = { ...common, arch: 'rwkv7', loraMix: 0, loraDecay: 0 } as const;
    expect(count({ ...v7, L: 12, C: 768, H: 12, F: 3072, loraW: 64, loraA: 64, loraV: 32, loraG: 128 }) / 1e9).toBeCloseTo(0.19, 2);
    expect(count({ ...v7, L: 24, C: 2048, H: 32, F: 8192, loraW: 96, loraA: 96, loraV: 64, loraG: 256 }) / 1e9).toBeCloseTo(1.53, 2);
  });
});
