/**
 * The engine behind the page, widget and CLI (in-process on Dawn): image-first prefix reuse, follow-ups, interrupt,
 * typed errors — with the real tokenizer on the 65536-vocab RWKV-6 fixture model.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { VisualRwkvEngine } from '../../src/worker/api';
import { testGpu } from '../helpers/gpu';
import { fixturePath, tensorF32 } from '../helpers/fixtures';
import { expectClose } from '../helpers/compare';
import { GREEDY } from '../../src/text/sampler';
import { ContextOverflowError, InvalidArgumentError } from '../../src/errors';
import type { TokenChunk } from '../../src/types';

/** Restoring a snapshot instead of recomputing the prefix changes nothing but summation order: near-exact. */
const REUSE_TOL = 1e-4;

const model = fixturePath('models/rwkv6_vocab65536/visualrwkv.pth');
const rowsAll = tensorF32('cases/rwkv6_vocab65536/e2e_image_0_middle_bidi.safetensors', 'image_rows');
const imageRows = Array.from({ length: 577 }, (_, i) => rowsAll.subarray(i * 32, (i + 1) * 32));

async function collect(it: AsyncIterable<TokenChunk>): Promise<TokenChunk[]> {
  const out: TokenChunk[] = [];
  for await (const c of it) out.push(c);
  return out;
}

let engine: VisualRwkvEngine;
let fresh: VisualRwkvEngine;
beforeAll(async () => {
  const gpu = await testGpu();
  engine = await VisualRwkvEngine.create({ model }, gpu);
  fresh = await VisualRwkvEngine.create({ model }, gpu);
});
afterAll(() => {
  engine?.dispose();
  fresh?.dispose();
});

const settings = { sampler: { ...GREEDY, stopIds: [] }, maxTokens: 6, recordLogits: true };

describe('VisualRwkvEngine', () => {
  it('image-first: a new question about the same image reuses the image prefix state (no image prefill)', async () => {
    const a = await collect(engine.chat({ text: 'What color is the bus?', imageRows, position: 'first', ...settings }));
    const full = a.at(-1)!.stats.prefillRows;
    expect(full).toBeGreaterThan(577);
    const b = await collect(engine.chat({ text: 'How many wheels?', imageRows, position: 'first', ...settings }));
    expect(b.at(-1)!.stats.prefillRows).toBeLessThan(40); // only the question's tokens
    // the same turn on an engine without the cached prefix: same ids, same logits
    const c = await collect(fresh.chat({ text: 'How many wheels?', imageRows, position: 'first', ...settings }));
    expect(c.at(-1)!.stats.prefillRows).toBe(b.at(-1)!.stats.prefillRows + 3 + 577);
    expect(b.map((x) => x.id)).toEqual(c.map((x) => x.id));
    b.forEach((x, i) => expectClose(x.logits!, c[i]!.logits!, REUSE_TOL, `step ${i}`));
  });

  it('sandwich (middle) turns prefill the image again but never rerun anything for follow-ups', async () => {
    const a = await collect(engine.chat({ text: 'What color is the bus?', imageRows, ...settings }));
    expect(a.at(-1)!.stats.prefillRows).toBeGreaterThan(577);
    const f = await collect(engine.chat({ text: 'Are you sure?', ...settings }));
    const last = f.at(-1)!;
    expect(last.stats.prefillRows).toBeLessThan(20); // "\n\n" terminator + the follow-up turn only
    expect(last.done).toBe('length');
  });

  it('interrupt() ends the reply within a token and the next question works', async () => {
    const chunks: TokenChunk[] = [];
    for await (const c of engine.chat({ text: 'Tell me a long story.', sampler: { ...GREEDY, stopIds: [] }, maxTokens: 200, newChat: true })) {
      chunks.push(c);
      if (chunks.length === 2) engine.interrupt();
    }
    expect(chunks.at(-1)!.done).toBe('interrupted');
    expect(chunks.length).toBeLessThanOrEqual(3);
    const next = await collect(engine.chat({ text: 'Hi', ...settings }));
    expect(next.at(-1)!.done).toBe('length');
    expect(next).toHaveLength(6);
  });

  it('an interrupt() issued before the reply starts still stops it', async () => {
    const gen = engine.chat({ text: 'Hello', sampler: { ...GREEDY, stopIds: [] }, maxTokens: 100, newChat: true });
    engine.interrupt();
    const chunks = await collect(gen);
    expect(chunks.at(-1)!.done).toBe('interrupted');
    expect(chunks.length).toBeLessThanOrEqual(1);
  });

  it('typed errors for impossible requests; the engine stays usable', async () => {
    await expect(collect(engine.chat({ text: 'x', image: new Uint8Array([1, 2, 3]) }))).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(collect(engine.chat({ text: 'x', imageRows: [new Float32Array(5)] }))).rejects.toThrow(/C = 32/);
    await expect(collect(engine.chat({ text: 'word '.repeat(20000), ...settings }))).rejects.toBeInstanceOf(ContextOverflowError);
    const ok = await collect(engine.chat({ text: 'Hi', ...settings, newChat: true }));
    expect(ok).toHaveLength(6);
  });
});

describe('EngineHost (device loss)', () => {
  it('a device lost between requests reloads transparently; lost mid-reply → DeviceLostError, then reloads', async () => {
    const { EngineHost } = await import('../../src/worker/host');
    const { DeviceLostError } = await import('../../src/errors');
    const host = new EngineHost({ model });
    const first = await host.ensure();
    const before = await collect(host.chat({ text: 'Hi', ...settings }));
    first.gpu.device.destroy(); // what a driver reset looks like to WebGPU
    await new Promise((r) => setTimeout(r, 50));
    const after = await collect(host.chat({ text: 'Hi', ...settings, newChat: true }));
    expect(host.recoveries).toBe(1);
    expect(host.current).not.toBe(first);
    expect(after.map((c) => c.id)).toEqual(before.map((c) => c.id));
    // lost while generating
    const second = host.current!;
    const seen: TokenChunk[] = [];
    await expect(
      (async () => {
        for await (const c of host.chat({ text: 'Hi', sampler: { ...GREEDY, stopIds: [] }, maxTokens: 50, newChat: true })) {
          seen.push(c);
          if (seen.length === 2) second.gpu.device.destroy();
        }
      })(),
    ).rejects.toBeInstanceOf(DeviceLostError);
    expect(seen.length).toBeLessThan(50);
    const again = await collect(host.chat({ text: 'Hi', ...settings, newChat: true }));
    expect(host.recoveries).toBe(2);
    expect(again.map((c) => c.id)).toEqual(before.map((c) => c.id));
    // interrupt issued before the host has an engine generation still applies
    const g = host.chat({ text: 'Hello', sampler: { ...GREEDY, stopIds: [] }, maxTokens: 100, newChat: true });
    host.interrupt();
    const chunks = await collect(g);
    expect(chunks.at(-1)!.done).toBe('interrupted');
    host.dispose();
  });
});
