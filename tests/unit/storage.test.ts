/**
 * src/storage in Node: the incremental SHA-256 against WebCrypto (random sizes, random split points, saved and
 * restored state), rate/ETA arithmetic and formatting, the catalogue's shape, Content-Range parsing, and the
 * download state machine of ModelStore over an in-memory backend and registry with a scripted fetch (resume with
 * Range, restart when Range is ignored, size/digest failures, quota, abort, import, delete). The same flows run
 * against real OPFS / Cache API / IndexedDB in tests/e2e/storage.test.ts.
 */
import { webcrypto } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DownloadError, StorageQuotaError } from '../../src/errors';
import { memoryBackend } from '../../src/storage/backends';
import { CATALOG, catalogEntry, fileNameOf, hfResolveUrl } from '../../src/storage/catalog';
import { parseContentRange } from '../../src/storage/download';
import { describeProgress, etaSeconds, formatBytes, formatDuration, percentOf, RateMeter, type DownloadProgress } from '../../src/storage/progress';
import { memoryRegistry } from '../../src/storage/registry';
import { Sha256, sha256Hex, toHex } from '../../src/storage/sha256';
import { ModelStore, type ModelStoreOptions } from '../../src/storage/store';

/** xorshift32 so failures reproduce. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
}

function randomBytes(n: number, r: () => number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (r() * 256) | 0;
  return b;
}

async function subtleHex(b: Uint8Array): Promise<string> {
  return toHex(new Uint8Array(await webcrypto.subtle.digest('SHA-256', b)));
}

describe('Sha256 (incremental) vs crypto.subtle', () => {
  it('known vectors', () => {
    expect(sha256Hex(new Uint8Array(0))).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(sha256Hex(new TextEncoder().encode('abc'))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(sha256Hex(new TextEncoder().encode('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq'))).toBe(
      '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1',
    );
  });

  it('every size 0..200 and around block boundaries, one update', async () => {
    const r = rng(1);
    const sizes = [...Array.from({ length: 201 }, (_, i) => i), 255, 256, 257, 511, 512, 513, 1000, 4095, 4096, 4097, 65_599];
    for (const n of sizes) {
      const b = randomBytes(n, r);
      expect(sha256Hex(b), `n=${n}`).toBe(await subtleHex(b));
    }
  });

  it('random sizes split at random points (many updates) give the same digest', async () => {
    const r = rng(2);
    for (let trial = 0; trial < 60; trial++) {
      const n = Math.floor(r() * (trial < 40 ? 3000 : 300_000));
      const b = randomBytes(n, r);
      const h = new Sha256();
      let pos = 0;
      while (pos < n) {
        const step = Math.min(n - pos, r() < 0.3 ? Math.floor(r() * 70) : Math.floor(r() * 20_000));
        h.update(b.subarray(pos, pos + step));
        pos += step;
      }
      expect(h.length).toBe(n);
      expect(h.hex(), `trial ${trial}, n=${n}`).toBe(await subtleHex(b));
    }
  });

  it('digest() does not end the hash: more updates continue it', async () => {
    const r = rng(3);
    const b = randomBytes(10_007, r);
    const h = new Sha256().update(b.subarray(0, 5000));
    expect(h.hex()).toBe(await subtleHex(b.subarray(0, 5000)));
    h.update(b.subarray(5000));
    expect(h.hex()).toBe(await subtleHex(b));
  });

  it('state saved (through JSON, as after a reload) and restored continues the digest', async () => {
    const r = rng(4);
    for (let trial = 0; trial < 30; trial++) {
      const n = 1 + Math.floor(r() * 200_000);
      const b = randomBytes(n, r);
      const cut = Math.floor(r() * (n + 1));
      const a = new Sha256().update(b.subarray(0, Math.floor(cut / 2))).update(b.subarray(Math.floor(cut / 2), cut));
      const saved = JSON.parse(JSON.stringify(a.saveState()));
      expect(saved.length).toBe(cut);
      expect(saved.tail.length).toBe(cut % 64);
      const resumed = Sha256.fromState(saved).update(b.subarray(cut));
      expect(resumed.hex(), `trial ${trial}, n=${n}, cut=${cut}`).toBe(await subtleHex(b));
    }
  });

  it('rejects a malformed saved state', () => {
    const good = new Sha256().update(new Uint8Array(70)).saveState();
    expect(() => Sha256.fromState({ ...good, h: good.h.slice(1) })).toThrow(TypeError);
    expect(() => Sha256.fromState({ ...good, length: good.length + 1 })).toThrow(TypeError); // tail length disagrees
    expect(() => Sha256.fromState({ ...good, tail: [...good.tail, 300].slice(-good.tail.length) })).toThrow(TypeError);
    expect(() => Sha256.fromState(null as never)).toThrow(TypeError);
  });

  it('throughput on 16 MiB (reported, loosely bounded)', async () => {
    const b = randomBytes(16 * 1024 * 1024, rng(5));
    const h = new Sha256();
    const t0 = performance.now();
    for (let o = 0; o < b.length; o += 65_536) h.update(b.subarray(o, o + 65_536));
    const ms = performance.now() - t0;
    const mbps = b.length / 1e6 / (ms / 1000);
    console.log(`[sha256] 16 MiB in ${ms.toFixed(0)} ms = ${mbps.toFixed(0)} MB/s`);
    expect(h.hex()).toBe(await subtleHex(b));
    // ~190 MB/s on an idle core here; the bound only catches a pathological slowdown (CI cores are shared).
    expect(mbps).toBeGreaterThan(5);
  });
});

describe('progress arithmetic', () => {
  it('RateMeter: steady rate, change of rate after the window, too-short spans', () => {
    const m = new RateMeter(5000, 250);
    m.add(0, 0);
    expect(m.rate()).toBe(0);
    m.add(100_000, 100);
    expect(m.rate()).toBe(0); // 100 ms observed: too noisy
    for (let t = 200; t <= 10_000; t += 100) m.add(t * 1000, t); // 1 MB/s
    expect(m.rate()).toBeCloseTo(1e6, 6);
    let bytes = 10_000 * 1000;
    for (let t = 10_100; t <= 20_000; t += 100) m.add((bytes += 200_000), t); // 2 MB/s for 10 s
    expect(m.rate()).toBeCloseTo(2e6, 6); // only the last 5 s count
    m.add(bytes, 19_000); // a stale sample is ignored
    expect(m.rate()).toBeCloseTo(2e6, 6);
    m.reset();
    expect(m.rate()).toBe(0);
  });

  it('RateMeter: window mixes rates proportionally', () => {
    const m = new RateMeter(4000, 0);
    m.add(0, 0);
    m.add(2_000_000, 2000); // 1 MB/s for 2 s
    m.add(2_000_000, 4000); // stalled for 2 s
    expect(m.rate()).toBeCloseTo(500_000, 6);
  });

  it('ETA, percent and formatting', () => {
    expect(etaSeconds(10e6, 2e6)).toBe(5);
    expect(etaSeconds(10e6, 0)).toBeUndefined();
    expect(etaSeconds(undefined, 1)).toBeUndefined();
    expect(etaSeconds(0, 0)).toBe(0);
    expect(percentOf(50, 200)).toBe(25);
    expect(percentOf(5, undefined)).toBeUndefined();
    expect(percentOf(0, 0)).toBe(100);
    expect(percentOf(300, 200)).toBe(100);
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(3.81e9)).toBe('3.81 GB');
    expect(formatBytes(15.9e9)).toBe('15.9 GB');
    expect(formatBytes(999_999)).toBe('1.00 MB');
    expect(formatDuration(5)).toBe('5 s');
    expect(formatDuration(125)).toBe('2 min 05 s');
    expect(formatDuration(3780)).toBe('1 h 03 min');
    expect(describeProgress({ loaded: 1.2e9, total: 3.81e9, rate: 12.5e6, etaSeconds: 209 })).toBe('1.20 GB of 3.81 GB (31%) · 12.5 MB/s · 3 min 29 s left');
    expect(describeProgress({ loaded: 5e6, rate: 0 })).toBe('5.00 MB');
  });

  it('parseContentRange', () => {
    expect(parseContentRange('bytes 100-199/1000')).toEqual({ start: 100, end: 199, total: 1000 });
    expect(parseContentRange('bytes */1000')).toEqual({ start: undefined, end: undefined, total: 1000 });
    expect(parseContentRange('bytes 0-9/*')).toEqual({ start: 0, end: 9, total: undefined });
    expect(parseContentRange('items 0-9/10')).toBeUndefined();
    expect(parseContentRange(null)).toBeUndefined();
  });
});

describe('catalogue', () => {
  it('has the released checkpoints and CLIP exports with well-formed entries', () => {
    const ids = CATALOG.map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const e of CATALOG) {
      expect(e.id).toMatch(/^[a-z0-9-]+$/);
      expect(e.name.length).toBeGreaterThan(3);
      expect(e.url).toMatch(/^https:\/\/huggingface\.co\/[^/]+\/[^/]+\/resolve\/main\/.+/);
      expect(e.size === undefined || Number.isSafeInteger(e.size)).toBe(true);
      expect(e.sha256 === undefined || /^[0-9a-f]{64}$/.test(e.sha256)).toBe(true);
      // Unknown sizes are said to be checked on download.
      if (e.size === undefined && e.approxSize === undefined) expect(e.sizeNote).toBe('size checked on download');
      for (const enc of e.encoders ?? []) expect(catalogEntry(enc)?.kind).toBe('encoder');
      expect(Object.isFrozen(e)).toBe(true);
    }
    const files = CATALOG.filter((e) => e.kind === 'checkpoint').map((e) => fileNameOf(e.url));
    expect(files).toEqual([
      'VisualRWKV-v060-1B6-v1.0-20240612.pth',
      'VisualRWKV-v060-3B-v1.0-20240612.pth',
      'VisualRWKV-v060-7B-v1.0-20240612.pth',
      'VisualRWKV-v0700-0B1-v1.0-20250109.pth',
      'VisualRWKV-v0700-0B4-v1.0-20250109.pth',
      'VisualRWKV-v0700-1B5-v1.0-20250204.pth',
    ]);
    // Spec §2.1 sizes (display only); v7 sizes are unknown.
    expect(CATALOG.filter((e) => e.kind === 'checkpoint').map((e) => e.approxSize)).toEqual([3.81e9, 6.81e9, 15.9e9, undefined, undefined, undefined]);
    expect(catalogEntry('visualrwkv-v060-1b6')!.url).toBe('https://huggingface.co/howard-hou/visualrwkv-6/resolve/main/VisualRWKV-v060-1B6-v1.0-20240612.pth');
    const enc = CATALOG.filter((e) => e.kind === 'encoder').map((e) => fileNameOf(e.url));
    expect(enc.sort()).toEqual(['vision_model.onnx', 'vision_model_fp16.onnx', 'vision_model_quantized.onnx']);
    expect(hfResolveUrl('a/b', 'onnx/x y.onnx')).toBe('https://huggingface.co/a/b/resolve/main/onnx/x%20y.onnx');
  });
});

// ---------------------------------------------------------------------------------------------------------------
// ModelStore over memory, with a scripted server

interface ServeRule {
  /** Error the body after this many body bytes. */
  dropAfter?: number;
  /** Serve this byte index XOR 0xff. */
  corruptAt?: number;
  /** Answer 200 with the whole file to a Range request. */
  ignoreRange?: boolean;
  etag?: string;
  /** Fail the body after its last byte (the client has everything but sees an error). */
  errorAtEnd?: boolean;
}

function fakeServer(file: Uint8Array) {
  const requests: { range: string | null }[] = [];
  const rule: ServeRule = {};
  const fetchFn = (async (_url: string | URL | Request, init?: RequestInit) => {
    const h = new Headers(init?.headers);
    const range = h.get('range');
    requests.push({ range });
    let start = 0;
    const m = range && !rule.ignoreRange ? /^bytes=(\d+)-$/.exec(range) : null;
    if (m) start = Number(m[1]);
    if (start >= file.length && m) {
      return new Response(null, { status: 416, headers: { 'Content-Range': `bytes */${file.length}` } });
    }
    let body = file.slice(start);
    if (rule.corruptAt !== undefined && rule.corruptAt >= start) body[rule.corruptAt - start]! ^= 0xff;
    const drop = rule.dropAfter;
    const signal = init?.signal;
    const limit = drop !== undefined ? Math.min(drop, body.length) : body.length;
    let o = 0;
    // Pull-based: erroring a stream drops chunks still queued, so hand them out one by one, then fail.
    const stream = new ReadableStream<Uint8Array>({
      pull(c) {
        if (o < limit) {
          const n = Math.min(7919, limit - o);
          c.enqueue(body.slice(o, o + n));
          o += n;
        } else if ((drop !== undefined && drop < body.length) || rule.errorAtEnd) c.error(new TypeError('network error'));
        else c.close();
      },
    });
    if (signal?.aborted) throw signal.reason;
    const headers: Record<string, string> = { 'Content-Length': String(body.length) };
    if (rule.etag) headers.ETag = rule.etag;
    if (m) headers['Content-Range'] = `bytes ${start}-${file.length - 1}/${file.length}`;
    return new Response(stream, { status: m ? 206 : 200, headers });
  }) as typeof fetch;
  return { fetchFn, requests, rule };
}

async function readWhole(src: { size: number; read(o: number, n: number): Promise<Uint8Array> }): Promise<Uint8Array> {
  return src.read(0, src.size);
}

describe('ModelStore download state machine (memory backend)', () => {
  const N = 300_001;
  const file = randomBytes(N, rng(9));
  const sha = sha256Hex(file);
  const SEG = 32 * 1024;

  async function setup(extra: ModelStoreOptions = {}) {
    const server = fakeServer(file);
    const backend = memoryBackend(SEG);
    const registry = memoryRegistry();
    const store = await ModelStore.open({ backend, registry, fetch: server.fetchFn, storage: null, progressIntervalMs: 0, ...extra });
    return { server, backend, registry, store };
  }
  const entry = { id: 'm', name: 'Test model', url: 'https://example.test/files/model.pth', sha256: sha };

  it('interrupted → partial kept with hash state → resumed with Range from the stored length → verified', async () => {
    const { server, registry, store } = await setup();
    server.rule.dropAfter = 100_000;
    const err = await store.download(entry).catch((e) => e);
    expect(err).toBeInstanceOf(DownloadError);
    expect((err as DownloadError).kind).toBe('network');
    const partial = (await registry.get('m'))!;
    expect(partial.state).toBe('partial');
    expect(partial.bytes).toBe(100_000);
    expect(partial.hash!.length).toBe(100_000);
    expect(await store.openCached('m')).toBeNull();

    server.rule.dropAfter = undefined;
    const progress: DownloadProgress[] = [];
    const src = await store.download(entry, { onProgress: (p) => progress.push(p) });
    expect(server.requests.map((r) => r.range)).toEqual([null, 'bytes=100000-']);
    expect(progress.at(-1)!.phase).toBe('complete');
    expect(progress.find((p) => p.phase === 'downloading')!.resumedFrom).toBe(100_000);
    expect(src.size).toBe(N);
    expect(src.name).toBe('model.pth');
    expect(sha256Hex(await readWhole(src))).toBe(sha);
    const rec = (await registry.get('m'))!;
    expect(rec).toMatchObject({ state: 'complete', bytes: N, total: N, sha256: sha });
    expect(rec.hash).toBeUndefined();
    expect(rec.segments.reduce((a, b) => a + b, 0)).toBe(N);
    // Downloading again returns the stored copy without a request.
    await store.download(entry);
    expect(server.requests.length).toBe(2);
    store.close();
  });

  it('without a saved hash state the stored bytes are re-hashed on resume', async () => {
    const { server, registry, store } = await setup();
    server.rule.dropAfter = 150_000;
    await store.download(entry).catch(() => undefined);
    const partial = (await registry.get('m'))!;
    delete partial.hash;
    await registry.put(partial);
    server.rule.dropAfter = undefined;
    const phases: string[] = [];
    await store.download(entry, { onProgress: (p) => phases.push(p.phase) });
    expect(phases[0]).toBe('checking');
    expect(server.requests.at(-1)!.range).toBe('bytes=150000-');
    expect((await registry.get('m'))!.sha256).toBe(sha);
    store.close();
  });

  it('a server that ignores Range restarts cleanly from byte 0', async () => {
    const { server, registry, store } = await setup();
    server.rule.dropAfter = 70_000;
    await store.download(entry).catch(() => undefined);
    server.rule.dropAfter = undefined;
    server.rule.ignoreRange = true;
    const src = await store.download(entry);
    expect(server.requests.at(-1)!.range).toBe('bytes=70000-');
    expect(sha256Hex(await readWhole(src))).toBe(sha);
    expect((await registry.get('m'))!.state).toBe('complete');
    store.close();
  });

  it('a changed ETag on resume discards the partial and starts over', async () => {
    const { server, registry, store } = await setup();
    server.rule.etag = '"v1"';
    server.rule.dropAfter = 50_000;
    await store.download(entry).catch(() => undefined);
    expect((await registry.get('m'))!.etag).toBe('"v1"');
    server.rule.etag = '"v2"';
    server.rule.dropAfter = undefined;
    await store.download(entry);
    expect(server.requests.map((r) => r.range)).toEqual([null, 'bytes=50000-', null]);
    expect((await registry.get('m'))!).toMatchObject({ state: 'complete', etag: '"v2"' });
    store.close();
  });

  it('every byte stored but not finalised: the resume gets 416 and only verifies', async () => {
    const { server, registry, store } = await setup();
    server.rule.errorAtEnd = true;
    expect(((await store.download(entry).catch((e) => e)) as DownloadError).kind).toBe('network');
    expect((await registry.get('m'))!).toMatchObject({ state: 'partial', bytes: N });
    server.rule.errorAtEnd = false;
    const phases: string[] = [];
    const src = await store.download(entry, { onProgress: (p) => phases.push(p.phase) });
    expect(server.requests.at(-1)!.range).toBe(`bytes=${N}-`);
    expect(phases).toEqual(['checking', 'connecting', 'verifying', 'complete']);
    expect(sha256Hex(await readWhole(src))).toBe(sha);
    store.close();
  });

  it('a corrupted byte fails the digest: not registered, partial discarded', async () => {
    const { server, backend, registry, store } = await setup();
    server.rule.corruptAt = 123_456;
    const err = await store.download(entry).catch((e) => e);
    expect(err).toBeInstanceOf(DownloadError);
    expect((err as DownloadError).kind).toBe('sha256');
    expect(await registry.get('m')).toBeUndefined();
    expect(backend.files.has('m')).toBe(false);
    expect(await store.openCached('m')).toBeNull();
    store.close();
  });

  it('a size that differs from the entry is refused before writing', async () => {
    const { backend, registry, store } = await setup();
    const err = await store.download({ ...entry, size: N + 1 }).catch((e) => e);
    expect((err as DownloadError).kind).toBe('size');
    expect(await registry.list()).toEqual([]);
    expect(backend.files.size).toBe(0);
    store.close();
  });

  it('too little quota → StorageQuotaError before any write; registry unchanged', async () => {
    const storage = { estimate: async () => ({ usage: 1000, quota: 200_000 }) };
    const { server, backend, registry, store } = await setup({ storage });
    // Known size up front: no request at all.
    let err = await store.download({ ...entry, size: N }).catch((e) => e);
    expect(err).toBeInstanceOf(StorageQuotaError);
    expect((err as StorageQuotaError).needed).toBe(N);
    expect((err as StorageQuotaError).available).toBe(199_000);
    expect(server.requests.length).toBe(0);
    // Size learnt from Content-Length: refused after the headers, before writing.
    err = await store.download(entry).catch((e) => e);
    expect(err).toBeInstanceOf(StorageQuotaError);
    expect(await registry.list()).toEqual([]);
    expect(backend.files.size).toBe(0);
    store.close();
  });

  it('abort keeps the partial data; the next download resumes it', async () => {
    const { server, registry, store } = await setup();
    const ctrl = new AbortController();
    const err = await store
      .download(entry, { signal: ctrl.signal, onProgress: (p) => p.loaded > 60_000 && ctrl.abort() })
      .catch((e) => e);
    expect((err as DOMException).name).toBe('AbortError');
    const partial = (await registry.get('m'))!;
    expect(partial.state).toBe('partial');
    expect(partial.bytes).toBeGreaterThan(60_000);
    const src = await store.download(entry);
    expect(server.requests.at(-1)!.range).toBe(`bytes=${partial.bytes}-`);
    expect(sha256Hex(await readWhole(src))).toBe(sha);
    store.close();
  });

  it('a second download of the same id at once is refused (busy)', async () => {
    const { store } = await setup();
    const a = store.download(entry);
    const err = await store.download(entry).catch((e) => e);
    expect((err as DownloadError).kind).toBe('busy');
    await a;
    store.close();
  });

  it('importFile stores a local file; delete removes it', async () => {
    const { backend, registry, store } = await setup();
    const local = new File([file as Uint8Array<ArrayBuffer>], 'local.safetensors', { lastModified: 1 });
    const src = await store.importFile(local, { id: 'local', sha256: sha });
    expect(src.name).toBe('local.safetensors');
    expect(sha256Hex(await readWhole(src))).toBe(sha);
    expect((await registry.get('local'))!).toMatchObject({ state: 'complete', name: 'local.safetensors', fileName: 'local.safetensors' });
    expect((await store.list()).map((r) => r.id)).toEqual(['local']);
    await store.delete('local');
    expect(await registry.get('local')).toBeUndefined();
    expect(backend.files.has('local')).toBe(false);
    expect(await store.openCached('local')).toBeNull();
    store.close();
  });

  it('a complete record whose bytes vanished is dropped by openCached', async () => {
    const { backend, registry, store } = await setup();
    await store.download(entry);
    backend.files.delete('m');
    expect(await store.openCached('m')).toBeNull();
    expect(await registry.get('m')).toBeUndefined();
    store.close();
  });
});
