/**
 * Model downloads and the model cache in headless Chromium with real OPFS, Cache API and IndexedDB. The page
 * (tests/e2e/pages/storage.html, vite dev server) downloads a 1 MB file from a tiny node:http server on another
 * origin (CORS + CORP headers, Range support) that can be told to drop the connection, stall, corrupt a byte or
 * ignore Range. Covered: interruption → resume with `Range: bytes=<stored>-` → SHA-256 verified → complete; reload
 * → still complete and byte-identical; reload in the middle of a download → resume from the committed segments with
 * the saved hash state; re-hash when no state was saved; corrupted byte → not registered, partial discarded;
 * server ignoring Range → clean restart; quota too small → StorageQuotaError before writing; abort keeps the
 * partial; the cache manager lists and deletes; delete removes files and record.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { formatBytes } from '../../src/storage/progress';
import { launchBrowser, openPage } from '../helpers/browser';
import { startServer, type TestServer } from '../helpers/server';

/** Test file: odd size, not a multiple of the 64 KiB test segment. */
const SIZE = 1_000_003;
const SEGMENT = 64 * 1024;

function testFile(): Uint8Array {
  const b = new Uint8Array(SIZE);
  let s = 0x9e3779b9;
  for (let i = 0; i < SIZE; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    b[i] = s & 0xff;
  }
  return b;
}
const FILE = testFile();
const SHA = createHash('sha256').update(FILE).digest('hex');

/** How the file server misbehaves for the next requests. */
interface Control {
  /** Close the connection after this many body bytes. */
  dropAfter?: number;
  /** Send this many body bytes, then hang until the client goes away. */
  stallAfter?: number;
  /** Flip this byte (file offset). */
  corruptAt?: number;
  /** Answer Range requests with 200 and the whole file. */
  ignoreRange?: boolean;
}

interface FileServer {
  url: string;
  ctl: Control;
  requests: { path: string; method?: string; range?: string; status: number }[];
  close(): Promise<void>;
}

/** A cross-origin file server: GET/HEAD/OPTIONS of /file.bin with single `bytes=a-` / `bytes=a-b` ranges. */
async function startFileServer(): Promise<FileServer> {
  const ctl: Control = {};
  const requests: FileServer['requests'] = [];
  const sockets = new Set<Socket>();
  const cors = (res: ServerResponse) => {
    res.setHeader('Access-Control-Allow-Origin', '*');
    res.setHeader('Access-Control-Allow-Headers', 'Range');
    res.setHeader('Access-Control-Expose-Headers', 'Content-Range, Content-Length, ETag, Accept-Ranges');
    res.setHeader('Cross-Origin-Resource-Policy', 'cross-origin');
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    cors(res);
    const path = (req.url ?? '/').split('?')[0]!;
    if (req.method === 'OPTIONS') {
      requests.push({ path, method: 'OPTIONS', status: 204 }); // a preflight: downloads should never need one
      res.statusCode = 204;
      return res.end();
    }
    if (path !== '/file.bin') {
      res.statusCode = 404;
      requests.push({ path, status: 404 });
      return res.end('not found');
    }
    const range = req.headers.range;
    const m = range && !ctl.ignoreRange ? /^bytes=(\d+)-(\d*)$/.exec(range) : null;
    let start = 0;
    let end = SIZE - 1;
    if (m) {
      start = Number(m[1]);
      if (m[2]) end = Math.min(Number(m[2]), SIZE - 1);
      if (start >= SIZE) {
        res.statusCode = 416;
        res.setHeader('Content-Range', `bytes */${SIZE}`);
        requests.push({ path, range, status: 416 });
        return res.end();
      }
      res.statusCode = 206;
      res.setHeader('Content-Range', `bytes ${start}-${end}/${SIZE}`);
    } else res.statusCode = 200;
    requests.push({ path, range, status: res.statusCode });
    res.setHeader('Accept-Ranges', 'bytes');
    res.setHeader('Content-Type', 'application/octet-stream');
    res.setHeader('Content-Length', String(end - start + 1));
    res.setHeader('ETag', '"test-file-v1"');
    res.setHeader('Cache-Control', 'no-store');
    if (req.method === 'HEAD') return res.end();
    const body = Buffer.from(FILE.subarray(start, end + 1));
    if (ctl.corruptAt !== undefined && ctl.corruptAt >= start && ctl.corruptAt <= end) body[ctl.corruptAt - start]! ^= 0xff;
    const cut = ctl.dropAfter ?? ctl.stallAfter;
    if (cut !== undefined && cut < body.length) {
      const stall = ctl.stallAfter !== undefined;
      res.write(body.subarray(0, cut), () => {
        // Drop: close the socket once the bytes are handed to the kernel (the client sees a short body).
        if (!stall) setTimeout(() => res.socket?.destroy(), 20);
      });
      return; // stall: leave the response open until the client disconnects
    }
    res.end(body);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/file.bin`,
    ctl,
    requests,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

interface Progress {
  phase: string;
  loaded: number;
  total?: number;
  resumedFrom: number;
}
type Outcome =
  | { ok: true; size: number; name: string; progress: Progress[] }
  | { ok: false; error: string; kind?: string; message: string; needed?: number; available?: number; progress: Progress[] };
interface Rec {
  id: string;
  state: 'partial' | 'complete';
  backend: string;
  bytes: number;
  total?: number;
  segments: number[];
  hash?: { length: number };
  sha256?: string;
}
interface Driver {
  download(backend: string, entry: object, abortAfter?: number): Promise<Outcome>;
  start(backend: string, entry: object): void;
  pending(): Promise<Outcome>;
  live(): Promise<Progress | null>;
  cancel(backend: string, id: string): Promise<boolean>;
  record(id: string): Promise<Rec | null>;
  ids(): Promise<string[]>;
  dropHashState(id: string): Promise<void>;
  cachedSha(backend: string, id: string): Promise<{ sha: string; size: number; name: string } | null>;
  readRange(backend: string, id: string, offset: number, length: number): Promise<number[]>;
  delete(backend: string, id: string): Promise<void>;
  estimate(backend: string): Promise<{ usage?: number; quota?: number; modelsBytes: number; persisted: boolean; backend: string }>;
  opfsFiles(id: string): Promise<string[]>;
  cacheKeys(id: string): Promise<string[]>;
  stubQuota(quota: number, usage: number): void;
  mount(): Promise<void>;
}
declare const st: Driver;

describe('model storage in headless Chromium (OPFS, Cache API, IndexedDB)', () => {
  let app: TestServer | undefined;
  let files: FileServer;
  let browser: Browser | undefined;
  let page: Page;
  let pageErrors: () => string[];

  const ready = () => page.locator('body[data-ready="true"]').waitFor({ state: 'attached', timeout: 60_000 });
  const entry = (id: string, extra: object = {}) => ({ id, name: `Test ${id}`, url: files.url, sha256: SHA, ...extra });
  const download = (backend: string, e: object, abortAfter?: number) =>
    page.evaluate(([b, e, a]) => st.download(b as string, e as object, a as number | undefined), [backend, e, abortAfter] as const);
  const record = (id: string) => page.evaluate((id) => st.record(id), id);
  const stored = (backend: string, id: string) => (backend === 'opfs' ? page.evaluate((id) => st.opfsFiles(id), id) : page.evaluate((id) => st.cacheKeys(id), id));

  beforeAll(async () => {
    files = await startFileServer();
    app = await startServer({ mode: 'dev' });
    browser = await launchBrowser({ webgpu: false });
    const opened = await openPage(browser, `${app.url}tests/e2e/pages/storage.html`, { name: 'storage' });
    page = opened.page;
    pageErrors = () => opened.log.pageErrors;
    await ready();
  });

  afterAll(async () => {
    await browser?.close();
    await app?.close();
    await files?.close();
  });

  beforeEach(() => {
    for (const k of Object.keys(files.ctl)) delete files.ctl[k as keyof Control];
    files.requests.length = 0;
  });

  for (const backend of ['opfs', 'cache']) {
    it(`${backend}: interrupted → resumes with Range from the stored bytes → verified → complete after a reload`, async () => {
      const id = `resume-${backend}`;
      files.ctl.dropAfter = 300_000;
      const first = await download(backend, entry(id));
      expect(first.ok).toBe(false);
      expect(first.ok === false && [first.error, first.kind]).toEqual(['DownloadError', 'network']);
      const partial = (await record(id))!;
      expect(partial).toMatchObject({ state: 'partial', backend, total: SIZE });
      expect(partial.bytes).toBeGreaterThan(0);
      expect(partial.bytes).toBeLessThanOrEqual(300_000);
      expect(partial.hash!.length).toBe(partial.bytes);
      expect(await page.evaluate(([b, id]) => st.cachedSha(b, id), [backend, id])).toBeNull(); // a partial is never used
      console.log(`[storage] ${backend}: ${partial.bytes} of 300000 sent bytes kept in ${partial.segments.length} segments`);

      delete files.ctl.dropAfter;
      files.requests.length = 0;
      const second = await download(backend, entry(id));
      expect(second).toMatchObject({ ok: true, size: SIZE, name: 'file.bin' });
      expect(files.requests.map((r) => [r.range, r.status])).toEqual([[`bytes=${partial.bytes}-`, 206]]);
      expect(second.progress.find((p) => p.phase === 'downloading')!.resumedFrom).toBe(partial.bytes);
      const done = (await record(id))!;
      expect(done).toMatchObject({ state: 'complete', bytes: SIZE, total: SIZE, sha256: SHA });
      expect(done.hash).toBeUndefined();

      await page.reload();
      await ready();
      expect(await record(id)).toMatchObject({ state: 'complete', bytes: SIZE, sha256: SHA });
      expect(await page.evaluate(([b, id]) => st.cachedSha(b, id), [backend, id])).toEqual({ sha: SHA, size: SIZE, name: 'file.bin' });
      for (const [o, n] of [[0, 16], [SEGMENT - 3, 7], [654_321, 100], [SIZE - 5, 5]] as const) {
        expect(await page.evaluate(([b, id, o, n]) => st.readRange(b, id, o, n), [backend, id, o, n] as const)).toEqual([...FILE.subarray(o, o + n)]);
      }
      // Already complete: a new download call answers from the store without a request.
      files.requests.length = 0;
      expect(await download(backend, entry(id))).toMatchObject({ ok: true, size: SIZE });
      expect(files.requests).toEqual([]);
    });
  }

  it('reload in the middle of a download: committed segments and hash state survive; resume continues them', async () => {
    const id = 'reload-mid';
    files.ctl.stallAfter = 500_000;
    await page.evaluate((e) => st.start('opfs', e), entry(id));
    const want = Math.floor(500_000 / SEGMENT) * SEGMENT; // segments are committed when full
    await expect.poll(async () => (await record(id))?.bytes ?? 0, { timeout: 30_000 }).toBe(want);
    await page.reload(); // the stalled response dies with the page; the open segment is lost
    await ready();
    const partial = (await record(id))!;
    expect(partial).toMatchObject({ state: 'partial', bytes: want });
    expect(partial.hash!.length).toBe(want);

    delete files.ctl.stallAfter;
    files.requests.length = 0;
    const res = await download('opfs', entry(id));
    expect(res.ok).toBe(true);
    expect(files.requests[0]!.range).toBe(`bytes=${want}-`);
    expect(await record(id)).toMatchObject({ state: 'complete', sha256: SHA });
    expect((await page.evaluate((id) => st.cachedSha('opfs', id), id))!.sha).toBe(SHA);
  });

  it('without a saved hash state the stored bytes are hashed again before resuming', async () => {
    const id = 'rehash';
    files.ctl.dropAfter = 400_000;
    expect((await download('opfs', entry(id))).ok).toBe(false);
    const partial = (await record(id))!;
    await page.evaluate((id) => st.dropHashState(id), id);
    delete files.ctl.dropAfter;
    files.requests.length = 0;
    const res = await download('opfs', entry(id));
    expect(res.ok).toBe(true);
    expect(res.progress[0]!.phase).toBe('checking');
    expect(files.requests[0]!.range).toBe(`bytes=${partial.bytes}-`);
    expect(await record(id)).toMatchObject({ state: 'complete', sha256: SHA });
  });

  for (const backend of ['opfs', 'cache']) {
    it(`${backend}: a corrupted byte is detected: not registered, partial data discarded`, async () => {
      const id = `corrupt-${backend}`;
      files.ctl.corruptAt = 600_000;
      const res = await download(backend, entry(id));
      expect(res.ok === false && [res.error, res.kind]).toEqual(['DownloadError', 'sha256']);
      expect(res.ok === false && res.message).toContain(SHA);
      expect(await record(id)).toBeNull();
      expect(await stored(backend, id)).toEqual([]);
      expect(await page.evaluate(([b, id]) => st.cachedSha(b, id), [backend, id])).toBeNull();
    });
  }

  it('a server that ignores Range restarts the download cleanly from byte 0', async () => {
    const id = 'no-range';
    files.ctl.dropAfter = 200_000;
    expect((await download('opfs', entry(id))).ok).toBe(false);
    const partial = (await record(id))!;
    expect(partial.bytes).toBeGreaterThan(0);
    delete files.ctl.dropAfter;
    files.ctl.ignoreRange = true;
    files.requests.length = 0;
    const res = await download('opfs', entry(id));
    expect(res.ok).toBe(true);
    expect(files.requests.map((r) => [r.range, r.status])).toEqual([[`bytes=${partial.bytes}-`, 200]]);
    expect(res.progress.find((p) => p.phase === 'downloading')!.resumedFrom).toBe(0);
    expect(await record(id)).toMatchObject({ state: 'complete', bytes: SIZE, sha256: SHA });
    expect((await page.evaluate((id) => st.cachedSha('opfs', id), id))!.sha).toBe(SHA);
  });

  it('a size that differs from the entry is refused before writing', async () => {
    const id = 'wrong-size';
    const res = await download('opfs', entry(id, { size: SIZE + 1 }));
    expect(res.ok === false && [res.error, res.kind]).toEqual(['DownloadError', 'size']);
    expect(await record(id)).toBeNull();
    expect(await stored('opfs', id)).toEqual([]);
  });

  it('quota too small → StorageQuotaError before anything is written; registry unchanged', async () => {
    const before = await page.evaluate(() => st.ids());
    await page.evaluate(() => st.stubQuota(100_000, 20_000));
    const known = await download('opfs', entry('quota-known', { size: SIZE }));
    expect(known.ok === false && known.error).toBe('StorageQuotaError');
    expect(known.ok === false && [known.needed, known.available]).toEqual([SIZE, 80_000]);
    expect(files.requests).toEqual([]); // the size was known: refused before asking the server
    const unknown = await download('opfs', entry('quota-unknown'));
    expect(unknown.ok === false && unknown.error).toBe('StorageQuotaError');
    expect(unknown.ok === false && unknown.message).toMatch(/Not enough storage for Test quota-unknown: it needs 1\.00 MB more/);
    expect(await page.evaluate(() => st.ids())).toEqual(before);
    expect(await stored('opfs', 'quota-known')).toEqual([]);
    expect(await stored('opfs', 'quota-unknown')).toEqual([]);
    await page.reload(); // drop the stub
    await ready();
  });

  it('abort keeps the partial data (also the open segment, also while a read is pending); the next download resumes it', async () => {
    // Abort from onProgress once 200 000 bytes are in (the server holds back everything after 500 000).
    const id = 'abort';
    files.ctl.stallAfter = 500_000;
    const res = await download('opfs', entry(id), 200_000);
    expect(res.ok === false && res.error).toBe('AbortError');
    const partial = (await record(id))!;
    expect(partial.state).toBe('partial');
    expect(partial.bytes).toBeGreaterThanOrEqual(200_000);
    expect(partial.bytes).toBeLessThanOrEqual(500_000);
    expect(partial.hash!.length).toBe(partial.bytes);
    delete files.ctl.stallAfter;
    files.requests.length = 0;
    expect((await download('opfs', entry(id))).ok).toBe(true);
    expect(files.requests[0]!.range).toBe(`bytes=${partial.bytes}-`);
    expect(await record(id)).toMatchObject({ state: 'complete', sha256: SHA });

    // ModelStore.cancel while the read waits on a stalled server: every byte received is kept, not only full segments.
    const id2 = 'cancel-stalled';
    files.ctl.stallAfter = 300_000;
    await page.evaluate((e) => st.start('opfs', e), entry(id2));
    await expect.poll(async () => (await record(id2))?.bytes ?? 0, { timeout: 30_000 }).toBe(Math.floor(300_000 / SEGMENT) * SEGMENT);
    await expect.poll(async () => (await page.evaluate(() => st.live()))?.loaded, { timeout: 30_000 }).toBe(300_000); // the open segment's tail arrived
    expect(await page.evaluate((id) => st.cancel('opfs', id), id2)).toBe(true);
    const out = await page.evaluate(() => st.pending());
    expect(out.ok === false && out.error).toBe('AbortError');
    expect(await record(id2)).toMatchObject({ state: 'partial', bytes: 300_000 });
    delete files.ctl.stallAfter;
    files.requests.length = 0;
    expect((await download('opfs', entry(id2))).ok).toBe(true);
    expect(files.requests[0]!.range).toBe('bytes=300000-');
    expect(await record(id2)).toMatchObject({ state: 'complete', sha256: SHA });
  });

  it('storage estimate reports usage, quota and the bytes held by models', async () => {
    const est = await page.evaluate(() => st.estimate('opfs'));
    expect(est.backend).toBe('opfs');
    expect(est.quota).toBeGreaterThan(0);
    expect(est.usage).toBeGreaterThanOrEqual(SIZE); // at least one stored copy is counted
    expect(est.modelsBytes).toBeGreaterThanOrEqual(4 * SIZE);
    expect(typeof est.persisted).toBe('boolean');
  });

  it('the cache manager lists stored models with size and date, shows the estimate, resumes and deletes', async () => {
    files.ctl.dropAfter = 300_000;
    expect((await download('opfs', entry('ui-resume'))).ok).toBe(false);
    const kept = (await record('ui-resume'))!.bytes;
    delete files.ctl.dropAfter;
    files.requests.length = 0;
    await page.evaluate(() => st.mount());
    const partialRow = page.locator('.vr-cache tr[data-id="ui-resume"]');
    await expect.poll(() => partialRow.getAttribute('data-state')).toBe('partial');
    // `kept` is what arrived before the drop (not always whole kB): the panel shows it as formatBytes does.
    expect(await partialRow.locator('td').nth(2).innerText()).toBe(`Partial: ${formatBytes(kept)} of 1.00 MB (${Math.floor((100 * kept) / SIZE)}%)`);
    await partialRow.locator('button[data-action="download"]').click();
    await expect.poll(() => partialRow.getAttribute('data-state'), { timeout: 30_000 }).toBe('complete');
    expect(files.requests.map((r) => r.range)).toEqual([`bytes=${kept}-`]);
    expect(await record('ui-resume')).toMatchObject({ state: 'complete', sha256: SHA });
    expect(await page.locator('.vr-cache-message').innerText()).toBe('Test ui-resume is stored and verified.');

    const row = page.locator('.vr-cache tr[data-id="resume-opfs"]');
    await expect.poll(() => row.getAttribute('data-state')).toBe('complete');
    const cells = await row.locator('td').allInnerTexts();
    expect(cells[0]).toContain('Test resume-opfs');
    expect(cells[1]).toBe('1.00 MB');
    expect(cells[2]).toBe('Verified (SHA-256)');
    expect(cells[3]).toMatch(/\d/); // a date
    expect(await page.locator('.vr-cache [data-role="usage"]').innerText()).toMatch(/^Models: [\d.]+ MB in \d+ files · Site storage: .* used of .* free\)$/);
    // Catalogue entries not stored yet are offered for download.
    const cat = page.locator('.vr-cache tr[data-id="visualrwkv-v060-1b6"]');
    expect(await cat.getAttribute('data-state')).toBe('available');
    expect(await cat.locator('td').nth(1).innerText()).toBe('≈ 3.81 GB');
    expect(await page.locator('.vr-cache tr[data-id="visualrwkv-v0700-0b1"] td').nth(1).innerText()).toBe('size checked on download');

    const del = row.locator('button[data-action="delete"]');
    await del.click();
    expect(await del.innerText()).toBe('Confirm delete');
    await del.click();
    await expect.poll(() => row.count()).toBe(0);
    expect(await record('resume-opfs')).toBeNull();
    expect(await stored('opfs', 'resume-opfs')).toEqual([]);
    expect(await page.locator('.vr-cache-message').innerText()).toBe('Test resume-opfs was deleted.');
  });

  it('delete removes the files and the record; openCached then gives nothing', async () => {
    for (const [backend, id] of [['cache', 'resume-cache'], ['opfs', 'abort']] as const) {
      expect(await record(id)).not.toBeNull();
      await page.evaluate(([b, id]) => st.delete(b, id), [backend, id]);
      expect(await record(id)).toBeNull();
      expect(await stored(backend, id)).toEqual([]);
      expect(await page.evaluate(([b, id]) => st.cachedSha(b, id), [backend, id])).toBeNull();
    }
    expect(pageErrors()).toEqual([]);
  });
});
