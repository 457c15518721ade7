/**
 * ModelStore.writeFile (files made on this device, e.g. GPU-ready copies) over the in-memory backend and registry:
 * body chunks split into segments with the head stored first, registered complete only at the end, replacing an
 * earlier file of the same id, nothing kept when the body throws / the signal aborts / the quota is too small, and
 * progress reports. Also the GPU-ready recorder feeding it while a producer waits on back-pressure.
 */
import { describe, expect, it } from 'vitest';
import { StorageQuotaError } from '../../src/errors';
import { memoryBackend } from '../../src/storage/backends';
import type { DownloadProgress } from '../../src/storage/progress';
import { memoryRegistry } from '../../src/storage/registry';
import { ModelStore, type StorageLike } from '../../src/storage/store';
import { GpuReadyRecorder } from '../../src/model/gpu-ready';

const SEG = 1000;

async function open(storage: StorageLike | null = null) {
  const backend = memoryBackend(SEG);
  const registry = memoryRegistry();
  const store = await ModelStore.open({ backend, registry, storage, progressIntervalMs: 0 });
  return { store, backend, registry };
}

function bytes(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);
}

async function* chunks(parts: Uint8Array[], failAfter?: number): AsyncGenerator<Uint8Array> {
  let i = 0;
  for (const p of parts) {
    if (failAfter !== undefined && i++ === failAfter) throw new Error('producer failed');
    yield p;
  }
}

async function all(src: { size: number; read(o: number, n: number): Promise<Uint8Array> }): Promise<Uint8Array> {
  return src.read(0, src.size);
}

describe('ModelStore.writeFile', () => {
  it('stores head + body in segments (head first), registers it complete with its derivation, reads back exactly', async () => {
    const { store, backend } = await open();
    const parts = [bytes(700, 1), bytes(1900, 2), bytes(5, 3), bytes(0, 4), bytes(1333, 5)];
    const head = bytes(24, 9);
    const progress: DownloadProgress[] = [];
    const src = await store.writeFile(
      { id: 'gpu-ready:m', name: 'M (GPU-ready)', fileName: 'm.gpu-ready.safetensors', derivedFrom: 'm', derivedFromSha256: 'ab'.repeat(32) },
      chunks(parts),
      { head: () => head, sizeHint: 4000, onProgress: (p) => progress.push(p) },
    );
    const want = new Uint8Array([...head, ...parts.flatMap((p) => [...p])]);
    expect(src.size).toBe(want.length);
    expect(src.name).toBe('m.gpu-ready.safetensors');
    expect(await all(src)).toEqual(want);
    const rec = (await store.get('gpu-ready:m'))!;
    expect(rec).toMatchObject({ state: 'complete', bytes: want.length, total: want.length, derivedFrom: 'm', derivedFromSha256: 'ab'.repeat(32), fileName: 'm.gpu-ready.safetensors' });
    expect(rec.segments[0]).toBe(24);
    expect(rec.segments.slice(1).every((n) => n <= SEG)).toBe(true);
    expect(rec.segments.reduce((a, b) => a + b, 0)).toBe(want.length);
    expect(backend.files.get('gpu-ready:m')!.size).toBe(rec.segments.length);
    expect(progress[0]).toMatchObject({ phase: 'downloading', loaded: 0, total: 4000 });
    expect(progress.at(-1)).toMatchObject({ phase: 'complete', loaded: want.length, total: want.length, percent: 100 });
    expect(await store.openBlob('gpu-ready:m')).not.toBeNull();
  });

  it('replaces a file of the same id; without a head the body is the file', async () => {
    const { store } = await open();
    await store.writeFile({ id: 'x', name: 'X' }, chunks([bytes(3000, 1)]));
    const src = await store.writeFile({ id: 'x', name: 'X' }, chunks([bytes(10, 7)]));
    expect(await all(src)).toEqual(bytes(10, 7));
    expect((await store.get('x'))!.segments).toEqual([10]);
  });

  it('a body that throws, an abort, or a quota too small keeps nothing (no record, no segments)', async () => {
    const { store, backend } = await open();
    await expect(store.writeFile({ id: 'a', name: 'A' }, chunks([bytes(1500, 1), bytes(1500, 2), bytes(10, 3)], 2), { head: () => bytes(8, 0) })).rejects.toThrow('producer failed');
    expect(await store.get('a')).toBeUndefined();
    expect(backend.files.has('a')).toBe(false);

    const ctrl = new AbortController();
    async function* slow() {
      yield bytes(1500, 1);
      ctrl.abort(new DOMException('stop', 'AbortError'));
      yield bytes(10, 2);
    }
    await expect(store.writeFile({ id: 'b', name: 'B' }, slow(), { signal: ctrl.signal })).rejects.toThrow('stop');
    expect(await store.get('b')).toBeUndefined();
    expect(backend.files.has('b')).toBe(false);

    const small = await open({ estimate: async () => ({ quota: 10_000, usage: 9_000 }) });
    const err = await small.store.writeFile({ id: 'c', name: 'C' }, chunks([bytes(10, 1)]), { sizeHint: 5000 }).catch((e) => e);
    expect(err).toBeInstanceOf(StorageQuotaError);
    expect((err as Error).message).toMatch(/Not enough storage for C/);
    expect(small.backend.files.has('c')).toBe(false);
  });

  it('fed by a GpuReadyRecorder with a small high-water mark: the producer is paced by the writes', async () => {
    const { store } = await open();
    const rec = new GpuReadyRecorder({ highWaterBytes: 300 });
    const writing = store.writeFile({ id: 'r', name: 'R' }, rec.body(), { head: () => bytes(16, 0) });
    const sent: Uint8Array[] = [];
    for (let i = 0; i < 20; i++) {
      const b = bytes(256, i);
      sent.push(b);
      await rec.sink({ label: i === 0 ? 'emb.weight' : `t${i}`, dtype: 'U8', shape: [256], bytes: b, op: 'copy' });
    }
    rec.finish();
    const src = await writing;
    expect(await all(src)).toEqual(new Uint8Array([...bytes(16, 0), ...sent.flatMap((b) => [...b])]));
  });
});
