/**
 * The model registry: one record per stored file in IndexedDB (idb-keyval, database `visualrwkv-storage`, store
 * `models`). This is the ONLY module that imports idb-keyval. A record says which bytes are stored (the lengths
 * of its segments), whether they are `complete` (fully downloaded AND verified) or `partial`, and for a partial
 * file the SHA-256 state over exactly the stored bytes, so a resume continues the digest without re-reading them.
 *
 * Invariant kept by ModelStore: a record is written only after the bytes it describes are durably stored, and it
 * says `complete` only after size and digest checks passed.
 */
import { clear, createStore, del, entries, get, set, type UseStore } from 'idb-keyval';
import type { Sha256State } from './sha256';

/** Where the bytes of a stored file live. */
export type BackendKind = 'opfs' | 'cache' | 'memory';

/** What the registry knows about one stored file. */
export interface StoredModel {
  /** Key (catalogue id or caller-chosen). */
  id: string;
  /** Human-readable name. */
  name: string;
  /** Where it was downloaded from (absent for imported local files). */
  url?: string;
  /** The file's own name ('VisualRWKV-v060-1B6-v1.0-20240612.pth'), used as the ByteSource name. */
  fileName?: string;
  /** 'partial': some bytes are stored, not verified; 'complete': every byte stored and verified. */
  state: 'partial' | 'complete';
  backend: BackendKind;
  /** Bytes stored (= the sum of `segments`). */
  bytes: number;
  /** Total size when known (server or catalogue); for a complete file it equals `bytes`. */
  total?: number;
  /** Stored segment lengths in order (the file is their concatenation). */
  segments: number[];
  /** The expected SHA-256 (hex) given when downloading, if any. */
  expectedSha256?: string;
  /** Complete: the SHA-256 of the whole file (checked against `expectedSha256` when one was given). */
  sha256?: string;
  /** Partial: the hash state over the first `bytes` bytes. */
  hash?: Sha256State;
  /** Response validators of the download, to notice a changed file on resume. */
  etag?: string;
  lastModified?: string;
  /** A file made on this device from another stored file (e.g. a GPU-ready copy): that file's id, and its SHA-256
   *  at the time when known (a source replaced by different bytes makes the copy stale). */
  derivedFrom?: string;
  derivedFromSha256?: string;
  /** Milliseconds since the epoch. */
  createdAt: number;
  updatedAt: number;
  completedAt?: number;
}

/** Storage for StoredModel records (IndexedDB in browsers; `memoryRegistry()` for tests and Node). */
export interface Registry {
  get(id: string): Promise<StoredModel | undefined>;
  put(rec: StoredModel): Promise<void>;
  delete(id: string): Promise<void>;
  list(): Promise<StoredModel[]>;
  /** Remove every record (tests, "forget everything"). */
  clear(): Promise<void>;
}

/** The IndexedDB registry (default names `visualrwkv-storage` / `models`). */
export function idbRegistry(dbName = 'visualrwkv-storage', storeName = 'models'): Registry {
  let store: UseStore | undefined;
  const s = () => (store ??= createStore(dbName, storeName));
  return {
    get: (id) => get<StoredModel>(id, s()),
    put: (rec) => set(rec.id, structuredClone(rec), s()),
    delete: (id) => del(id, s()),
    async list() {
      return (await entries<string, StoredModel>(s())).map(([, v]) => v);
    },
    clear: () => clear(s()),
  };
}

/** A registry in memory (records are copied in and out, like IndexedDB would). */
export function memoryRegistry(): Registry {
  const m = new Map<string, StoredModel>();
  return {
    async get(id) {
      const r = m.get(id);
      return r && structuredClone(r);
    },
    async put(rec) {
      m.set(rec.id, structuredClone(rec));
    },
    async delete(id) {
      m.delete(id);
    },
    async list() {
      return [...m.values()].map((r) => structuredClone(r));
    },
    async clear() {
      m.clear();
    },
  };
}

/** True if `x` looks like a StoredModel written by this version (guards against foreign or old records). */
export function isStoredModel(x: unknown): x is StoredModel {
  const r = x as StoredModel;
  return (
    !!r && typeof r === 'object' && typeof r.id === 'string' && typeof r.name === 'string' &&
    (r.state === 'partial' || r.state === 'complete') && typeof r.backend === 'string' &&
    Number.isSafeInteger(r.bytes) && Array.isArray(r.segments) && r.segments.reduce((a, b) => a + b, 0) === r.bytes
  );
}
