/**
 * Test page script (tests/e2e/storage.test.ts): puts a small driver for src/storage on `globalThis.st` (results are
 * plain JSON so page.evaluate can return them) and marks the page ready.
 */
import { CATALOG } from '../../../src/storage/catalog';
import type { DownloadEntry } from '../../../src/storage/download';
import type { DownloadProgress } from '../../../src/storage/progress';
import { idbRegistry, type StoredModel } from '../../../src/storage/registry';
import { ModelStore } from '../../../src/storage/store';
import { mountCacheManager, type CacheManager } from '../../../src/ui/cache-manager';

type Backend = 'opfs' | 'cache';
/** Small segments so a 1 MB test file spans many of them. */
const SEGMENT = 64 * 1024;

const stores = new Map<Backend, Promise<ModelStore>>();
const store = (b: Backend) => {
  let s = stores.get(b);
  if (!s) stores.set(b, (s = ModelStore.open({ backend: b, segmentSize: SEGMENT, progressIntervalMs: 0 })));
  return s;
};
const registry = idbRegistry();

type Outcome =
  | { ok: true; size: number; name: string; progress: DownloadProgress[] }
  | { ok: false; error: string; kind?: string; message: string; needed?: number; available?: number; progress: DownloadProgress[] };

async function outcome(p: (onProgress: (x: DownloadProgress) => void) => Promise<{ size: number; name: string }>): Promise<Outcome> {
  const progress: DownloadProgress[] = [];
  try {
    const src = await p((x) => progress.push(x));
    return { ok: true, size: src.size, name: src.name, progress };
  } catch (e) {
    const err = e as Error & { kind?: string; needed?: number; available?: number };
    return { ok: false, error: err?.name ?? String(e), kind: err?.kind, message: err?.message ?? String(e), needed: err?.needed, available: err?.available, progress };
  }
}

let pending: Promise<Outcome> | undefined;
let live: DownloadProgress | undefined;
let manager: CacheManager | undefined;

const st = {
  /** Download and wait; `abortAfter` aborts once that many bytes are stored. */
  download(backend: Backend, entry: DownloadEntry, abortAfter?: number): Promise<Outcome> {
    const ctrl = new AbortController();
    return outcome(async (onProgress) =>
      (await store(backend)).download(entry, {
        signal: ctrl.signal,
        onProgress: (p) => {
          onProgress(p);
          if (abortAfter !== undefined && p.loaded >= abortAfter) ctrl.abort();
        },
      }),
    );
  },
  /** Start a download without waiting (for the reload test). */
  start(backend: Backend, entry: DownloadEntry): void {
    live = undefined;
    pending = outcome(async (onProgress) =>
      (await store(backend)).download(entry, {
        onProgress: (p) => {
          onProgress(p);
          live = p;
        },
      }),
    );
  },
  /** The last progress report of the download started with `start`. */
  live: () => live ?? null,
  pending: () => pending,
  /** Pause this page's download of `id` (ModelStore.cancel). */
  cancel: async (backend: Backend, id: string) => (await store(backend)).cancel(id),
  record: async (id: string) => (await registry.get(id)) ?? null,
  ids: async () => (await registry.list()).map((r) => r.id).sort(),
  async dropHashState(id: string) {
    const r = (await registry.get(id)) as StoredModel;
    delete r.hash;
    await registry.put(r);
  },
  /** SHA-256 (WebCrypto) of the whole stored file, or null when openCached gives nothing. */
  async cachedSha(backend: Backend, id: string): Promise<{ sha: string; size: number; name: string } | null> {
    const src = await (await store(backend)).openCached(id);
    if (!src) return null;
    const bytes = await src.read(0, src.size);
    const d = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
    return { sha: [...d].map((b) => b.toString(16).padStart(2, '0')).join(''), size: src.size, name: src.name };
  },
  async readRange(backend: Backend, id: string, offset: number, length: number): Promise<number[]> {
    const src = await (await store(backend)).openCached(id);
    return [...(await src!.read(offset, length))];
  },
  delete: async (backend: Backend, id: string) => (await store(backend)).delete(id),
  estimate: async (backend: Backend) => (await store(backend)).estimate(),
  /** The OPFS segment files of an id (empty when its directory is gone). */
  async opfsFiles(id: string): Promise<string[]> {
    const root = await (await navigator.storage.getDirectory()).getDirectoryHandle('visualrwkv-models', { create: true });
    try {
      const dir = await root.getDirectoryHandle(`m-${encodeURIComponent(id)}`);
      const out: string[] = [];
      for await (const name of (dir as unknown as { keys(): AsyncIterable<string> }).keys()) out.push(name);
      return out.sort();
    } catch {
      return [];
    }
  },
  async cacheKeys(id: string): Promise<string[]> {
    const c = await caches.open('visualrwkv-models-v1');
    return (await c.keys()).map((r) => r.url).filter((u) => u.includes(`/${encodeURIComponent(id)}/`));
  },
  /** Make navigator.storage.estimate report a small quota (until the page reloads). */
  stubQuota(quota: number, usage: number): void {
    navigator.storage.estimate = async () => ({ quota, usage });
  },
  async mount(): Promise<void> {
    manager?.destroy();
    manager = mountCacheManager(document.getElementById('manager')!, await store('opfs'), { catalog: CATALOG });
    await manager.refresh();
  },
};

(globalThis as unknown as { st: typeof st }).st = st;
document.body.dataset.ready = 'true';
