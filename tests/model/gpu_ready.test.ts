/**
 * GPU-ready copies (src/model/gpu-ready.ts): load a fixture `.pth` with a TensorReader sink, write the recorded
 * buffers (plus the projector's tensors) as a `.safetensors` in a temp dir, load that back with RwkvModel.load, and
 * get bit-identical logits and state; the copy's load uploads exactly the same bytes per buffer as the original's.
 * Also: RWKV-7, an F32 source (its bf16 rounding is recorded, not redone), the projector from the copy, the engine's
 * `recordTensors` option, copies of another layout version or with a different transpose/stack recipe refused,
 * and the recorder's back-pressure.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testGpu } from '../helpers/gpu';
import { fixturePath, tensorF32, tensorI32 } from '../helpers/fixtures';
import type { Gpu } from '../../src/engine/gpu';
import { RwkvModel } from '../../src/model/model';
import type { UploadedTensor } from '../../src/model/upload';
import {
  GPU_READY_FORMAT,
  GPU_READY_VERSION,
  GpuReadyRecorder,
  gpuReadyInfo,
  isGpuReady,
  recordProjectorTensors,
} from '../../src/model/gpu-ready';
import { openCheckpoint, type Checkpoint } from '../../src/weights/checkpoint';
import { nodeFileSource } from '../../src/weights/node-source';
import { bytesSource } from '../../src/weights/source';
import { parseSafetensors, writeSafetensors } from '../../src/weights/safetensors';
import { toF32, type DType } from '../../src/weights/dtype';
import { WeightsFormatError } from '../../src/errors';
import { ProjectorV6 } from '../../src/vision/projector';
import { VisualRwkvEngine } from '../../src/worker/api';

let gpu: Gpu;
let dir = '';
const opened: { close(): Promise<void> }[] = [];

beforeAll(async () => {
  gpu = await testGpu();
  dir = mkdtempSync(join(tmpdir(), 'visualrwkv-gpu-ready-'));
});
afterAll(async () => {
  for (const s of opened) await s.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

/** Copies of every record (the sink must not keep references the loader may reuse). */
function collector(): { sink: (t: UploadedTensor) => void; records: UploadedTensor[] } {
  const records: UploadedTensor[] = [];
  return { records, sink: (t) => void records.push({ ...t, shape: [...t.shape], bytes: t.bytes.slice() }) };
}

/** Load `ckpt` recording a GPU-ready copy (the body written as it streams), write it to `path`; returns the model. */
async function loadAndRecord(ckpt: Checkpoint, path: string, opts: { projector?: boolean; also?: (t: UploadedTensor) => void } = {}): Promise<RwkvModel> {
  const rec = new GpuReadyRecorder({ highWaterBytes: 256 * 1024 });
  const chunks: Uint8Array[] = [];
  const draining = (async () => {
    for await (const c of rec.body()) chunks.push(c.slice());
  })();
  const sink = async (t: UploadedTensor) => {
    opts.also?.({ ...t, bytes: t.bytes.slice() });
    await rec.sink(t);
  };
  let model: RwkvModel;
  try {
    model = await RwkvModel.load(gpu, ckpt, { sink });
    if (opts.projector) await recordProjectorTensors(ckpt, sink);
    rec.finish();
  } catch (e) {
    rec.fail(e);
    throw e;
  } finally {
    await draining.catch(() => undefined);
  }
  await draining;
  writeFileSync(path, concat([rec.header({ source: ckpt.name, config: model.cfg }), ...chunks]));
  return model;
}

async function open(path: string): Promise<Checkpoint> {
  const src = await nodeFileSource(path);
  opened.push(src);
  return openCheckpoint(src);
}

/** Bitwise equality of two float arrays (NaN payloads and -0 included). */
function expectBitEqual(a: Float32Array, b: Float32Array, what: string): void {
  expect(a.length, what).toBe(b.length);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  let diff = -1;
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) {
    diff = i;
    break;
  }
  expect(diff, `${what}: first differing element`).toBe(-1);
}

async function logitsAndState(model: RwkvModel, ids: number[]): Promise<{ logits: Float32Array; state: Float32Array[] }> {
  model.reset();
  const logits = (await model.prefill(ids))!;
  const st = await model.state.read();
  return { logits, state: st.flatMap((l) => Object.values(l).filter((v): v is Float32Array => v instanceof Float32Array)) };
}

/** Write `ckpt`'s bytes again with its metadata changed (for the refusal tests). */
async function withMetadata(path: string, out: string, change: (m: Record<string, string>) => void): Promise<void> {
  const { readFileSync } = await import('node:fs');
  const bytes = new Uint8Array(readFileSync(path));
  const tensors = parseSafetensors(bytes);
  const ckpt = await open(path);
  const meta = { ...ckpt.metadata! };
  change(meta);
  const rec: Record<string, { dtype: DType; shape: number[]; data: ArrayBufferView }> = {};
  for (const [k, t] of tensors) rec[k] = { dtype: t.dtype, shape: t.shape, data: t.bytes };
  const plain = writeSafetensors(rec);
  // writeSafetensors has no metadata: rebuild its header with ours.
  const n = Number(new DataView(plain.buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(plain.subarray(8, 8 + n)));
  header.__metadata__ = meta;
  let text = JSON.stringify(header);
  while ((text.length + 8) % 8) text += ' ';
  const hb = new TextEncoder().encode(text);
  const head = new Uint8Array(8);
  new DataView(head.buffer).setBigUint64(0, BigInt(hb.byteLength), true);
  writeFileSync(out, concat([head, hb, plain.subarray(8 + n)]));
}

const CASES = [
  { name: 'rwkv6_tiny', ids: 'cases/rwkv6_tiny/text_0.safetensors' },
  { name: 'rwkv7_tiny', ids: 'cases/rwkv7_tiny/text_0.safetensors' },
] as const;

describe('GPU-ready copies', () => {
  for (const c of CASES) {
    it(`${c.name}: .pth → recorded copy → bit-identical logits and state; the copy uploads the same bytes`, async () => {
      const pth = await open(fixturePath(`models/${c.name}/visualrwkv.pth`));
      const path = join(dir, `${c.name}.gpu-ready.safetensors`);
      const first = collector();
      const t0 = performance.now();
      const original = await loadAndRecord(pth, path, { projector: true, also: first.sink });
      const tOriginal = performance.now() - t0;
      const ready = await open(path);
      expect(isGpuReady(ready)).toBe(true);
      expect(ready.metadata).toMatchObject({ format: GPU_READY_FORMAT, version: String(GPU_READY_VERSION), source: pth.name, arch: original.cfg.arch });
      const info = gpuReadyInfo(ready)!;
      expect({ ...info.config, prefix: '' }).toEqual({ ...original.cfg, prefix: '' });
      // The projector's tensors are copied unchanged.
      for (const [k, t] of pth.tensors) {
        if (!k.startsWith('proj.')) continue;
        const copy = ready.tensors.get(k)!;
        expect([copy.dtype, copy.shape]).toEqual([t.dtype, t.shape]);
        expect(Buffer.from((await copy.read()).bytes).equals(Buffer.from((await t.read()).bytes))).toBe(true);
      }

      const second = collector();
      const t1 = performance.now();
      const fromCopy = await RwkvModel.load(gpu, ready, { sink: second.sink });
      const tCopy = performance.now() - t1;
      console.log(`[gpu-ready] ${c.name}: ${first.records.length} buffers; load .pth ${tOriginal.toFixed(0)} ms (with recording), GPU-ready copy ${tCopy.toFixed(0)} ms`);
      try {
        // Same buffers, same order, same bytes: nothing was converted differently.
        const lm = first.records.filter((r) => r.op !== 'copy');
        expect(second.records.map((r) => [r.label, r.dtype, r.shape])).toEqual(lm.map((r) => [r.label, r.dtype, r.shape]));
        lm.forEach((r, i) => expect(Buffer.from(second.records[i]!.bytes).equals(Buffer.from(r.bytes)), r.label).toBe(true));
        expect(lm.some((r) => r.op === 'matrixT')).toBe(true);
        expect(lm.some((r) => r.op === 'stacked')).toBe(true);

        const ids = Array.from(tensorI32(c.ids, 'input_ids'));
        const a = await logitsAndState(original, ids);
        const b = await logitsAndState(fromCopy, ids);
        expectBitEqual(b.logits, a.logits, 'logits');
        a.state.forEach((s, i) => expectBitEqual(b.state[i]!, s, `state ${i}`));
        // And both still match the golden (the copy is not just equal to a broken load).
        const golden = tensorF32(c.ids, 'logits_last');
        let maxErr = 0;
        for (let i = 0; i < golden.length; i++) maxErr = Math.max(maxErr, Math.abs(golden[i]! - a.logits[i]!));
        expect(maxErr).toBeLessThan(1e-3);
      } finally {
        original.destroy();
        fromCopy.destroy();
      }
    });
  }

  it('an F32 source: the bf16 rounding is recorded once; the copy holds 16-bit matrices and loads bit-identically', async () => {
    const pth = await open(fixturePath('models/rwkv6_tiny/visualrwkv.pth'));
    const f32: Record<string, { dtype: DType; shape: number[]; data: ArrayBufferView }> = {};
    for (const [k, info] of pth.tensors) f32[k] = { dtype: 'F32', shape: info.shape, data: toF32(await info.read()) };
    const src = await openCheckpoint(bytesSource(writeSafetensors(f32), 'rwkv6_tiny_f32.safetensors'));
    const path = join(dir, 'f32.gpu-ready.safetensors');
    const original = await loadAndRecord(src, path);
    const ready = await open(path);
    try {
      expect(ready.tensors.get('rwkv.emb.weight')!.dtype).toBe('BF16');
      expect(ready.tensors.get('rwkv.blocks.0.att.time_maa_w1')!.shape).toEqual([5 * original.cfg.loraMix, original.cfg.C]); // transposed
      expect(ready.tensors.get('rwkv.blocks.0.ln1.weight')!.dtype).toBe('F32');
      const fromCopy = await RwkvModel.load(gpu, ready);
      try {
        const ids = Array.from(tensorI32('cases/rwkv6_tiny/text_0.safetensors', 'input_ids'));
        expectBitEqual((await logitsAndState(fromCopy, ids)).logits, (await logitsAndState(original, ids)).logits, 'logits');
      } finally {
        fromCopy.destroy();
      }
    } finally {
      original.destroy();
    }
  });

  it('the projector loads from the copy and projects identically', async () => {
    const pth = await open(fixturePath('models/rwkv6_tiny/visualrwkv.pth'));
    const path = join(dir, 'rwkv6_tiny.gpu-ready.safetensors'); // written by the first test
    const ready = await open(path);
    const a = await ProjectorV6.load(gpu, pth);
    const b = await ProjectorV6.load(gpu, ready);
    try {
      const x = new Float32Array(3 * a.D).map((_, i) => Math.sin(i * 0.37));
      const ya = await a.project(x, 3);
      const yb = await b.project(x, 3);
      ya.forEach((r, i) => expectBitEqual(yb[i]!, r, `row ${i}`));
    } finally {
      a.destroy();
      b.destroy();
    }
  });

  it('a copy of another layout version, or made with another transpose/stack recipe, is refused (never misread)', async () => {
    const path = join(dir, 'rwkv6_tiny.gpu-ready.safetensors');
    const cases: [string, (m: Record<string, string>) => void, RegExp][] = [
      ['version', (m) => (m.version = String(GPU_READY_VERSION + 1)), /layout version 2, but this version reads version 1/],
      ['transposed', (m) => (m.transposed = JSON.stringify(JSON.parse(m.transposed!).slice(1))), /does not match how this version loads 'blocks\.0\.att\.time_maa_w1' \(transposed\)/],
      [
        'stacked',
        (m) => {
          const s = JSON.parse(m.stacked!);
          s['blocks.0.att.time_maa_wkvrg'] = [...s['blocks.0.att.time_maa_wkvrg']].reverse();
          m.stacked = JSON.stringify(s);
        },
        /does not match how this version loads 'blocks\.0\.att\.time_maa_wkvrg'/,
      ],
      ['config', (m) => (m.config = '{"arch":"rwkv5"}'), /invalid model config/],
    ];
    for (const [what, change, message] of cases) {
      const out = join(dir, `bad-${what}.safetensors`);
      await withMetadata(path, out, change);
      const err = await RwkvModel.load(gpu, await open(out)).then(
        (m) => (m.destroy(), null),
        (e: unknown) => e,
      );
      expect(err, what).toBeInstanceOf(WeightsFormatError);
      expect((err as Error).message, what).toMatch(message);
    }
  });

  it('the engine records through EngineOptions.recordTensors; an engine on the copy answers with the same logits', async () => {
    const pthPath = fixturePath('models/rwkv6_vocab65536/visualrwkv.pth');
    const rec = new GpuReadyRecorder();
    const chunks: Uint8Array[] = [];
    const draining = (async () => {
      for await (const c of rec.body()) chunks.push(c.slice());
    })();
    const engine = await VisualRwkvEngine.create({ model: pthPath, recordTensors: rec.sink }, gpu);
    rec.finish();
    await draining;
    const path = join(dir, 'vocab.gpu-ready.safetensors');
    writeFileSync(path, concat([rec.header({ source: 'rwkv6_vocab65536', config: engine.info.config }), ...chunks]));
    const copy = await VisualRwkvEngine.create({ model: path }, gpu);
    try {
      expect(copy.info).toEqual(engine.info);
      expect((await open(path)).tensors.has('proj.weight')).toBe(true);
      const run = async (e: VisualRwkvEngine) => {
        const out: { id: number; logits: Float32Array }[] = [];
        for await (const ch of e.chat({ text: 'Hello there', newChat: true, maxTokens: 4, sampler: { temperature: 0 }, recordLogits: true })) out.push({ id: ch.id, logits: ch.logits! });
        return out;
      };
      const a = await run(engine);
      const b = await run(copy);
      expect(b.map((x) => x.id)).toEqual(a.map((x) => x.id));
      a.forEach((x, i) => expectBitEqual(b[i]!.logits, x.logits, `step ${i}`));
    } finally {
      engine.dispose();
      copy.dispose();
    }
  });

  it('the recorder holds at most highWaterBytes: sink waits for body(); fail() ends both sides', async () => {
    const rec = new GpuReadyRecorder({ highWaterBytes: 100 });
    const t = (label: string) => ({ label, dtype: 'F32' as const, shape: [16], bytes: new Uint8Array(64).fill(label.length), op: 'vector' as const });
    await rec.sink(t('emb.weight')); // 64 ≤ 100: returns at once
    let second = false;
    const p = Promise.resolve(rec.sink(t('b'))).then(() => (second = true)); // 128 > 100: waits
    await new Promise((r) => setTimeout(r, 20));
    expect(second).toBe(false);
    const it = rec.body()[Symbol.asyncIterator]();
    expect((await it.next()).value).toHaveLength(64);
    await p;
    expect(second).toBe(true);
    await expect(Promise.resolve(rec.sink(t('b')))).rejects.toThrow(/recorded twice/);
    rec.fail(new Error('load failed'));
    await expect(it.next()).rejects.toThrow('load failed');
    await expect(Promise.resolve(rec.sink(t('c')))).rejects.toThrow(/after the recording failed/);
    expect(() => rec.header({ source: 'x', config: {} as never })).toThrow(/finish\(\) first/);
  });
});
