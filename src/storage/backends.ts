/**
 * Where the bytes of stored models live. A stored file is a sequence of immutable segments (default 64 MiB in
 * OPFS, 16 MiB in the Cache API); the registry records their lengths. Segments make resume cheap and safe on every
 * backend:
 * - OPFS `createWritable()` writes into a swap file that only replaces the real file on `close()`; re-opening one
 *   huge file with `keepExistingData` to commit progress copies it (O(n²) over a 16 GB download), while a reload
 *   before `close()` loses everything since the last one. A segment is committed once, when it is full (or when the
 *   download stops), so at most one segment is lost to a reload.
 * - The Cache API cannot append at all; a segment is one cached Response.
 * Reading concatenates the segment Files into one Blob (`new Blob(files)` keeps references, it copies nothing).
 */

/** Writes one segment. Nothing is visible to `read` until `commit` resolves. */
export interface SegmentWriter {
  /** Bytes written to this segment so far. */
  readonly written: number;
  write(chunk: Uint8Array): Promise<void>;
  /** Make the segment durable and readable. */
  commit(): Promise<void>;
  /** Drop the segment (best effort). */
  abort(): Promise<void>;
}

/** A place to store segmented files by id. */
export interface SegmentBackend {
  readonly kind: 'opfs' | 'cache' | 'memory';
  /** Preferred segment size in bytes. */
  readonly segmentSize: number;
  /** Start (or restart, replacing) segment `index` of `id`. */
  begin(id: string, index: number): Promise<SegmentWriter>;
  /** The first `count` segments of `id`, in order; null if any is missing. */
  read(id: string, count: number): Promise<Blob[] | null>;
  /** Remove every segment of `id` (no error if there is none). */
  remove(id: string): Promise<void>;
  /** Ids that have stored segments (to find orphans the registry no longer knows). */
  ids(): Promise<string[]>;
}

const MiB = 1024 * 1024;
/** OPFS writes are batched to about this many bytes (fewer, larger writes through the browser's IPC). */
const OPFS_BATCH = 4 * MiB;

const segName = (index: number) => `${String(index).padStart(6, '0')}.part`;
/** A directory name for an id: encodeURIComponent removes '/' and '\\'; the prefix rules out '.' and '..'. */
const dirName = (id: string) => `m-${encodeURIComponent(id)}`;
const idOfDir = (name: string) => (name.startsWith('m-') ? decodeURIComponent(name.slice(2)) : null);

function concat(chunks: Uint8Array[], n: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(n);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

/** True if this browser has the Origin Private File System with `createWritable` (main thread). */
export function hasOpfs(): boolean {
  return (
    typeof navigator !== 'undefined' && typeof navigator.storage?.getDirectory === 'function' &&
    typeof FileSystemFileHandle !== 'undefined' && 'createWritable' in FileSystemFileHandle.prototype
  );
}

/**
 * Segments as OPFS files `<rootDir>/m-<id>/<index>.part`. Returns null when OPFS (with createWritable) is missing
 * or refuses to open (some private-browsing modes).
 */
export async function opfsBackend(rootDir = 'visualrwkv-models', segmentSize = 64 * MiB): Promise<SegmentBackend | null> {
  if (!hasOpfs()) return null;
  let root: FileSystemDirectoryHandle;
  try {
    root = await (await navigator.storage.getDirectory()).getDirectoryHandle(rootDir, { create: true });
  } catch {
    return null;
  }
  const dirOf = (id: string, create: boolean) => root.getDirectoryHandle(dirName(id), { create });
  return {
    kind: 'opfs',
    segmentSize,
    async begin(id, index) {
      const fh = await (await dirOf(id, true)).getFileHandle(segName(index), { create: true });
      const w = await fh.createWritable({ keepExistingData: false });
      let batch: Uint8Array[] = [];
      let batched = 0;
      let written = 0;
      const flush = async () => {
        if (!batched) return;
        const data = concat(batch, batched);
        batch = [];
        batched = 0;
        await w.write(data as Uint8Array<ArrayBuffer>);
      };
      return {
        get written() {
          return written;
        },
        async write(chunk) {
          batch.push(chunk);
          batched += chunk.length;
          written += chunk.length;
          if (batched >= OPFS_BATCH) await flush();
        },
        async commit() {
          await flush();
          await w.close();
        },
        async abort() {
          batch = [];
          await w.abort().catch(() => undefined);
        },
      };
    },
    async read(id, count) {
      try {
        const dir = await dirOf(id, false);
        const out: Blob[] = [];
        for (let i = 0; i < count; i++) out.push(await (await dir.getFileHandle(segName(i))).getFile());
        return out;
      } catch (e) {
        if ((e as DOMException)?.name === 'NotFoundError' || (e as DOMException)?.name === 'TypeMismatchError') return null;
        throw e;
      }
    },
    async remove(id) {
      try {
        await root.removeEntry(dirName(id), { recursive: true });
      } catch (e) {
        if ((e as DOMException)?.name !== 'NotFoundError') throw e;
      }
    },
    async ids() {
      const out: string[] = [];
      // `keys()` is missing from TypeScript's DOM lib for FileSystemDirectoryHandle.
      for await (const name of (root as unknown as { keys(): AsyncIterable<string> }).keys()) {
        const id = idOfDir(name);
        if (id !== null) out.push(id);
      }
      return out;
    },
  };
}

/**
 * Segments as Cache API entries `https://visualrwkv-models.invalid/<id>/<index>` in cache `cacheName` (the fallback
 * when OPFS is missing). A segment is held in memory until committed, hence the smaller default size.
 */
export async function cacheBackend(cacheName = 'visualrwkv-models-v1', segmentSize = 16 * MiB): Promise<SegmentBackend | null> {
  if (typeof caches === 'undefined') return null;
  let cache: Cache;
  try {
    cache = await caches.open(cacheName);
  } catch {
    return null;
  }
  const base = 'https://visualrwkv-models.invalid/';
  const prefix = (id: string) => `${base}${encodeURIComponent(id)}/`;
  const key = (id: string, index: number) => `${prefix(id)}${index}`;
  return {
    kind: 'cache',
    segmentSize,
    async begin(id, index) {
      const chunks: Uint8Array<ArrayBuffer>[] = [];
      let written = 0;
      return {
        get written() {
          return written;
        },
        async write(chunk) {
          chunks.push(chunk as Uint8Array<ArrayBuffer>);
          written += chunk.length;
        },
        async commit() {
          const body = new Blob(chunks, { type: 'application/octet-stream' });
          await cache.put(key(id, index), new Response(body, { headers: { 'X-Segment-Length': String(written) } }));
          chunks.length = 0;
        },
        async abort() {
          chunks.length = 0;
        },
      };
    },
    async read(id, count) {
      const out: Blob[] = [];
      for (let i = 0; i < count; i++) {
        const res = await cache.match(key(id, i));
        if (!res) return null;
        out.push(await res.blob());
      }
      return out;
    },
    async remove(id) {
      const p = prefix(id);
      for (const req of await cache.keys()) if (req.url.startsWith(p)) await cache.delete(req);
    },
    async ids() {
      const out = new Set<string>();
      for (const req of await cache.keys()) {
        if (!req.url.startsWith(base)) continue;
        const part = req.url.slice(base.length).split('/')[0]!;
        out.add(decodeURIComponent(part));
      }
      return [...out];
    },
  };
}

/** Segments as Blobs in memory (tests, Node). */
export function memoryBackend(segmentSize = 16 * MiB): SegmentBackend & { files: Map<string, Map<number, Blob>> } {
  const files = new Map<string, Map<number, Blob>>();
  return {
    kind: 'memory',
    segmentSize,
    files,
    async begin(id, index) {
      const chunks: Uint8Array<ArrayBuffer>[] = [];
      let written = 0;
      return {
        get written() {
          return written;
        },
        async write(chunk) {
          chunks.push(chunk.slice());
          written += chunk.length;
        },
        async commit() {
          if (!files.has(id)) files.set(id, new Map());
          files.get(id)!.set(index, new Blob(chunks));
        },
        async abort() {
          chunks.length = 0;
        },
      };
    },
    async read(id, count) {
      const f = files.get(id);
      const out: Blob[] = [];
      for (let i = 0; i < count; i++) {
        const b = f?.get(i);
        if (!b) return null;
        out.push(b);
      }
      return out;
    },
    async remove(id) {
      files.delete(id);
    },
    async ids() {
      return [...files.keys()];
    },
  };
}
