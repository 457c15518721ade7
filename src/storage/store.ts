/**
 * ModelStore: the persistent model cache. Verified, resumable downloads into OPFS (Cache API fallback), an
 * IndexedDB registry of what is stored, storage estimate / persistence, and ByteSources over complete files.
 *
 * Guarantees:
 * - `openCached(id)` returns a source only for a `complete` record, i.e. every byte stored, the size matching the
 *   server's total (and the catalogue's when given) and the SHA-256 matching when one was given.
 * - A quota problem is reported (StorageQuotaError) before any byte is written when the size is known.
 * - Cancelling (AbortSignal) or a broken connection keeps the bytes received; the next `download` of the same id
 *   and URL resumes with `Range: bytes=<stored>-` and continues the saved hash state.
 * - One download per id at a time, across tabs too (Web Locks); a second one fails with DownloadError 'busy'.
 *
 * @example
 * const store = await ModelStore.open();
 * const src = await store.download(catalogEntry('visualrwkv-v060-1b6')!, {
 *   onProgress: (p) => (label.textContent = describeProgress(p)),
 *   signal: controller.signal,
 * });
 * const vr = await createVisualRwkv({ model: src });
 * // next visit:
 * const cached = await store.openCached('visualrwkv-v060-1b6'); // ByteSource | null
 */
import { DownloadError, InvalidArgumentError, StorageQuotaError } from '../errors';
import { blobSource, type ByteSource } from '../weights/source';
import { cacheBackend, opfsBackend, type SegmentBackend, type SegmentWriter } from './backends';
import { fileNameOf } from './catalog';
import { blobBodySource, httpBodySource, type DownloadEntry } from './download';
import { etaSeconds, formatBytes, percentOf, RateMeter, type DownloadProgress } from './progress';
import { idbRegistry, isStoredModel, type BackendKind, type Registry, type StoredModel } from './registry';
import { isSha256Hex } from './sha256';
import { transfer, type TransferContext, type TransferTarget } from './transfer';

/** The parts of `navigator.storage` the store uses (tests may pass a stub). */
export type StorageLike = Partial<Pick<StorageManager, 'estimate' | 'persist' | 'persisted'>>;

export interface ModelStoreOptions {
  /** 'auto' (default): OPFS when available, else the Cache API. A SegmentBackend object is used as given. */
  backend?: 'auto' | 'opfs' | 'cache' | SegmentBackend;
  /** Default: the IndexedDB registry (`visualrwkv-storage`). */
  registry?: Registry;
  /** fetch for downloads (default: the global one). */
  fetch?: typeof fetch;
  /** Segment size in bytes for the built-in backends (default 64 MiB OPFS, 16 MiB Cache API). */
  segmentSize?: number;
  /** Default `navigator.storage`; null disables estimates and quota checks. Read at call time, so stubs work. */
  storage?: StorageLike | null;
  /** Minimum ms between two 'downloading' progress reports (default 100). */
  progressIntervalMs?: number;
}

export interface DownloadOptions {
  onProgress?: (p: DownloadProgress) => void;
  /** Abort the download; the bytes received so far are kept for a resume. Rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Extra request headers (e.g. Authorization). Non-safelisted headers make cross-origin requests preflighted. */
  headers?: Record<string, string>;
}

/** A file made on this device, for `writeFile`. */
export interface WriteEntry {
  id: string;
  /** Shown in the cache manager and in messages. */
  name: string;
  /** The file's own name (the ByteSource / File name). */
  fileName?: string;
  /** Id of the stored file it was made from (and that file's SHA-256), e.g. for a GPU-ready copy. */
  derivedFrom?: string;
  derivedFromSha256?: string;
}

export interface WriteFileOptions {
  /** Called once `body` is consumed; its bytes are stored BEFORE the body (a header indexing the body). */
  head?: () => Uint8Array | Promise<Uint8Array>;
  /** Expected size in bytes, for the quota check before writing and for progress (not verified). */
  sizeHint?: number;
  signal?: AbortSignal;
  onProgress?: (p: DownloadProgress) => void;
}

/** What `estimate()` reports. */
export interface StorageInfo {
  /** Bytes this site uses (all storage), when the browser says. */
  usage?: number;
  /** Bytes this site may use, when the browser says. */
  quota?: number;
  /** quota − usage. */
  available?: number;
  /** Whether the browser granted persistent storage (not evicted under storage pressure). */
  persisted: boolean;
  /** Bytes held by stored models (complete and partial). */
  modelsBytes: number;
  /** Where new downloads go. */
  backend: BackendKind;
}

/** Events for `subscribe`: a record changed (here or in another tab), or a download made progress (this page). */
export type StoreEvent = { type: 'change'; id: string } | { type: 'progress'; progress: DownloadProgress };

const CHANNEL = 'visualrwkv-storage';
const LOCK_PREFIX = 'visualrwkv-model:';

const abortError = (msg: string) => new DOMException(msg, 'AbortError');

function locks(): LockManager | undefined {
  return typeof navigator !== 'undefined' ? navigator.locks : undefined;
}

/** The persistent model cache. Create with `ModelStore.open()`. */
export class ModelStore {
  private readonly listeners = new Set<(e: StoreEvent) => void>();
  private readonly active = new Map<string, { ctrl: AbortController; done: Promise<void> }>();
  private readonly backends = new Map<BackendKind, Promise<SegmentBackend | null>>();
  private readonly channel: BroadcastChannel | null;

  private constructor(
    private readonly backend: SegmentBackend,
    private readonly registry: Registry,
    private readonly options: ModelStoreOptions,
  ) {
    this.backends.set(backend.kind, Promise.resolve(backend));
    this.channel = typeof BroadcastChannel !== 'undefined' ? new BroadcastChannel(CHANNEL) : null;
    this.channel?.addEventListener('message', (ev: MessageEvent) => {
      const d = ev.data as StoreEvent;
      if (d?.type === 'change' && typeof d.id === 'string') this.emit(d, false);
    });
  }

  /**
   * Open the store: pick the backend, then remove orphaned segment files (left by a crash between deleting a
   * record and its files) that no tab is writing.
   * Throws InvalidArgumentError when neither OPFS nor the Cache API is available (or the one asked for is missing).
   */
  static async open(options: ModelStoreOptions = {}): Promise<ModelStore> {
    const want = options.backend ?? 'auto';
    let backend: SegmentBackend | null;
    if (typeof want === 'object') backend = want;
    else {
      const seg = options.segmentSize;
      backend = want === 'cache' ? null : await opfsBackend(undefined, seg);
      if (!backend && want !== 'opfs') backend = await cacheBackend(undefined, seg);
    }
    if (!backend) {
      throw new InvalidArgumentError(
        want === 'auto'
          ? 'no persistent storage here: this browser has neither the Origin Private File System nor the Cache API (private browsing, or an insecure http:// page)'
          : `the ${want} storage backend is not available in this browser`,
      );
    }
    const store = new ModelStore(backend, options.registry ?? idbRegistry(), options);
    await store.collectGarbage().catch(() => undefined);
    return store;
  }

  /** Where new downloads are stored. */
  get backendKind(): BackendKind {
    return this.backend.kind;
  }

  /** Every stored file (complete and partial), most recently changed first. */
  async list(): Promise<StoredModel[]> {
    const all = (await this.registry.list()).filter(isStoredModel);
    return all.sort((a, b) => b.updatedAt - a.updatedAt);
  }

  /** The record of `id`, if any. */
  async get(id: string): Promise<StoredModel | undefined> {
    const r = await this.registry.get(id);
    return isStoredModel(r) ? r : undefined;
  }

  /** The browser's storage estimate, whether storage is persistent, and the bytes held by models. */
  async estimate(): Promise<StorageInfo> {
    const st = this.storage();
    const est = await st?.estimate?.().catch(() => undefined);
    const persisted = (await st?.persisted?.().catch(() => false)) ?? false;
    const modelsBytes = (await this.list()).reduce((a, r) => a + r.bytes, 0);
    const usage = est?.usage;
    const quota = est?.quota;
    return {
      ...(usage !== undefined ? { usage } : {}),
      ...(quota !== undefined ? { quota } : {}),
      ...(usage !== undefined && quota !== undefined ? { available: Math.max(0, quota - usage) } : {}),
      persisted,
      modelsBytes,
      backend: this.backend.kind,
    };
  }

  /** Ask the browser to keep this site's data under storage pressure (`navigator.storage.persist()`).
   *  Resolves to whether storage is now persistent (browsers may decide without asking the user). */
  async requestPersistence(): Promise<boolean> {
    const st = this.storage();
    if (!st?.persist) return false;
    try {
      return await st.persist();
    } catch {
      return false;
    }
  }

  /**
   * Download `entry.url` into the store (or return the stored copy when it is already complete and matches the
   * entry), verifying size and SHA-256, and resolve to a ByteSource over the stored file. Resumes a partial
   * download of the same id and URL. An id names one file: a complete record with a different URL, size or
   * digest is replaced.
   * Rejects with StorageQuotaError (before writing when the size is known), DownloadError ('network' | 'http':
   * partial kept; 'size' | 'sha256': discarded; 'busy'), InvalidArgumentError for a malformed entry, or the
   * signal's reason when aborted (partial kept).
   */
  async download(entry: DownloadEntry, opts: DownloadOptions = {}): Promise<ByteSource> {
    const target = this.target(entry);
    const url = target.url!;
    return this.run(target.id, opts, async (signal, onProgress) => {
      const rec = await this.get(target.id);
      if (rec?.state === 'complete') {
        const same = rec.url === url && (target.sha256 === undefined || rec.sha256 === target.sha256) && (target.size === undefined || rec.bytes === target.size);
        const src = same ? await this.openCached(target.id) : null;
        if (src) {
          onProgress?.({ id: target.id, phase: 'complete', loaded: rec.bytes, total: rec.bytes, percent: 100, rate: 0, etaSeconds: 0, resumedFrom: rec.bytes });
          return src;
        }
        await this.removeNow(target.id, rec.backend);
      } else if (rec && rec.backend !== this.backend.kind) {
        await this.removeNow(target.id, rec.backend); // a partial file in another backend cannot be continued here
      }
      await transfer(this.context(), target, httpBodySource(url, this.options.fetch, opts.headers), { signal, onProgress });
      return this.mustOpen(target.id);
    });
  }

  /**
   * Copy a local File/Blob into the store (hashing it, and checking `sha256` when given) so later visits need not
   * pick it again. Same results and errors as `download`; `name` defaults to the file name.
   */
  async importFile(file: Blob, entry: { id: string; name?: string; sha256?: string }, opts: Omit<DownloadOptions, 'headers'> = {}): Promise<ByteSource> {
    const fileName = (file as Partial<File>).name || undefined;
    const target = this.target({ id: entry.id, name: entry.name ?? fileName ?? entry.id, url: '', size: file.size, sha256: entry.sha256 }, false);
    delete target.url;
    if (fileName !== undefined) target.fileName = fileName;
    return this.run(target.id, opts, async (signal, onProgress) => {
      const rec = await this.get(target.id);
      if (rec?.state === 'complete') {
        const same = rec.url === undefined && rec.bytes === file.size &&
          (target.sha256 !== undefined ? rec.sha256 === target.sha256 : rec.fileName === fileName);
        const src = same ? await this.openCached(target.id) : null;
        if (src) return src;
        await this.removeNow(target.id, rec.backend);
      } else if (rec && rec.backend !== this.backend.kind) {
        await this.removeNow(target.id, rec.backend);
      }
      await transfer(this.context(), target, blobBodySource(file, fileName), { signal, onProgress });
      return this.mustOpen(target.id);
    });
  }

  /**
   * Store a file made on this device (e.g. the GPU-ready copy of a checkpoint): `body`'s chunks in order, after the
   * bytes of `opts.head()` when given (called once the body is consumed, so it can index what was written). A
   * stored file of the same id is replaced. The file is registered complete only once every byte is stored; an error
   * thrown by `body`, a failed write or an abort stores nothing (the segments written are removed). No SHA-256 is
   * computed (there is nothing to check it against).
   * Rejects with StorageQuotaError (before writing when `sizeHint` does not fit, or when the browser refuses more),
   * DownloadError 'busy', InvalidArgumentError for a malformed entry, or the signal's reason.
   */
  async writeFile(entry: WriteEntry, body: AsyncIterable<Uint8Array>, opts: WriteFileOptions = {}): Promise<ByteSource> {
    const target = this.target({ id: entry?.id, name: entry?.name, url: '' }, false);
    return this.run(target.id, opts, async (signal, onProgress) => {
      const old = await this.get(target.id);
      if (old) await this.removeNow(target.id, old.backend);
      if (opts.sizeHint !== undefined) await this.checkQuota(opts.sizeHint, target.name);
      const backend = this.backend;
      const base = opts.head ? 1 : 0;
      const segments: number[] = [];
      let stored = 0;
      let writer: SegmentWriter | null = null;
      const meter = new RateMeter();
      let last = -Infinity;
      const report = (phase: DownloadProgress['phase'], force = false) => {
        const t = performance.now();
        if (!force && t - last < (this.options.progressIntervalMs ?? 100)) return;
        last = t;
        const total = phase === 'complete' ? stored : opts.sizeHint;
        const rate = meter.rate();
        onProgress({ id: target.id, phase, loaded: stored, total, percent: percentOf(stored, total), rate, etaSeconds: total !== undefined ? etaSeconds(Math.max(0, total - stored), rate) : undefined, resumedFrom: 0 });
      };
      const commit = async () => {
        const w = writer;
        writer = null;
        if (!w || w.written === 0) return void (await w?.abort());
        await w.commit();
        segments.push(w.written);
      };
      const iterator = body[Symbol.asyncIterator]();
      try {
        report('downloading', true);
        meter.add(0, performance.now());
        for (;;) {
          if (signal.aborted) throw signal.reason ?? abortError('aborted');
          const r = await iterator.next();
          if (r.done) break;
          let chunk = r.value;
          while (chunk.length > 0) {
            writer ??= await backend.begin(target.id, base + segments.length);
            const part = chunk.subarray(0, backend.segmentSize - writer.written);
            await writer.write(part);
            stored += part.length;
            chunk = chunk.subarray(part.length);
            if (writer.written >= backend.segmentSize) await commit();
          }
          meter.add(stored, performance.now());
          report('downloading');
        }
        await commit();
        if (opts.head) {
          const head = await opts.head();
          const w = await backend.begin(target.id, 0);
          writer = w;
          await w.write(head);
          await w.commit();
          writer = null;
          segments.unshift(head.byteLength);
          stored += head.byteLength;
        }
        report('verifying', true);
        const blobs = await backend.read(target.id, segments.length);
        if (!blobs || blobs.some((b, i) => b.size !== segments[i])) {
          throw new DownloadError(`${target.name}: the stored segments do not read back with their sizes; nothing was kept`, { kind: 'network' });
        }
      } catch (e) {
        await (writer as SegmentWriter | null)?.abort().catch(() => undefined);
        await iterator.return?.().catch(() => undefined);
        await backend.remove(target.id).catch(() => undefined);
        const name = (e as DOMException)?.name;
        if (name === 'QuotaExceededError') {
          throw new StorageQuotaError(`${target.name}: the browser refused to store more data (storage quota exceeded) after ${formatBytes(stored)}; nothing was kept`, { cause: e });
        }
        throw e;
      }
      const t = Date.now();
      await this.registry.put({
        id: target.id,
        name: target.name,
        ...(entry.fileName ? { fileName: entry.fileName } : {}),
        state: 'complete',
        backend: backend.kind,
        bytes: stored,
        total: stored,
        segments,
        ...(entry.derivedFrom !== undefined ? { derivedFrom: entry.derivedFrom } : {}),
        ...(entry.derivedFromSha256 !== undefined ? { derivedFromSha256: entry.derivedFromSha256 } : {}),
        createdAt: t,
        updatedAt: t,
        completedAt: t,
      });
      this.emit({ type: 'change', id: target.id });
      report('complete', true);
      return this.mustOpen(target.id);
    });
  }

  /** A ByteSource over the stored file when it is complete (verified); null otherwise. A complete record whose
   *  bytes are gone (site data partly cleared) is removed and null returned. */
  async openCached(id: string): Promise<ByteSource | null> {
    const rec = await this.get(id);
    const blob = await this.openBlob(id);
    return blob && rec ? blobSource(blob, rec.fileName ?? rec.name) : null;
  }

  /** Like `openCached` but the stored file as one Blob (e.g. for `readAll`-style use of a small ONNX encoder). */
  async openBlob(id: string): Promise<Blob | null> {
    const rec = await this.get(id);
    if (!rec || rec.state !== 'complete') return null;
    const backend = await this.backendFor(rec.backend);
    const blobs = backend ? await backend.read(id, rec.segments.length) : null;
    if (!blobs || blobs.some((b, i) => b.size !== rec.segments[i])) {
      // Not `delete`: that would abort (and wait for) a download of this id calling us from inside the lock.
      if (backend) await this.removeNow(id, rec.backend).catch(() => undefined);
      return null;
    }
    return blobs.length === 1 ? blobs[0]! : new Blob(blobs);
  }

  /** Remove a stored file (complete or partial). A download of it in this page is aborted first. Sources already
   *  opened on it stop working. Throws DownloadError 'busy' while another tab downloads it. */
  async delete(id: string): Promise<void> {
    const a = this.active.get(id);
    if (a) {
      a.ctrl.abort(abortError(`${id} was deleted`));
      await a.done;
    }
    await this.withLock(id, async () => {
      const rec = await this.registry.get(id);
      await this.removeNow(id, rec?.backend ?? this.backend.kind);
    });
  }

  /** Abort this page's download of `id` (keeping its partial data). Returns whether one was running. */
  cancel(id: string): boolean {
    const a = this.active.get(id);
    a?.ctrl.abort(abortError(`the download of ${id} was cancelled`));
    return !!a;
  }

  /** Ids being downloaded by this page. */
  activeDownloads(): string[] {
    return [...this.active.keys()];
  }

  /** Listen to record changes and download progress; returns the unsubscribe function. */
  subscribe(listener: (e: StoreEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Stop listening to other tabs. Running downloads continue. */
  close(): void {
    this.channel?.close();
    this.listeners.clear();
  }

  /** Remove segment files that no record describes and no tab is writing (needs Web Locks; else does nothing). */
  async collectGarbage(): Promise<string[]> {
    const lm = locks();
    if (!lm) return [];
    const known = new Set((await this.registry.list()).map((r) => r.id));
    const removed: string[] = [];
    for (const id of await this.backend.ids()) {
      if (known.has(id) || this.active.has(id)) continue;
      await lm.request(LOCK_PREFIX + id, { ifAvailable: true }, async (lock) => {
        if (!lock || (await this.registry.get(id))) return;
        await this.backend.remove(id);
        removed.push(id);
      });
    }
    return removed;
  }

  // -------------------------------------------------------------------------------------------------------------

  private storage(): StorageLike | null {
    if (this.options.storage !== undefined) return this.options.storage;
    return typeof navigator !== 'undefined' && navigator.storage ? navigator.storage : null;
  }

  private emit(e: StoreEvent, broadcast = true): void {
    for (const l of [...this.listeners]) {
      try {
        l(e);
      } catch (err) {
        console.error(err);
      }
    }
    if (broadcast && e.type === 'change') this.channel?.postMessage(e);
  }

  private target(entry: DownloadEntry, needUrl = true): TransferTarget {
    if (!entry || typeof entry.id !== 'string' || !entry.id) throw new InvalidArgumentError('a download needs a non-empty string id');
    if (typeof entry.name !== 'string' || !entry.name) throw new InvalidArgumentError(`${entry.id}: a download needs a name`);
    if (entry.size !== undefined && !(Number.isSafeInteger(entry.size) && entry.size >= 0)) {
      throw new InvalidArgumentError(`${entry.id}: size must be a whole number of bytes, got ${entry.size}`);
    }
    if (entry.sha256 !== undefined && !isSha256Hex(entry.sha256)) throw new InvalidArgumentError(`${entry.id}: sha256 must be 64 hex digits`);
    let url = entry.url;
    if (needUrl) {
      try {
        url = new URL(entry.url, globalThis.location?.href).href;
      } catch {
        throw new InvalidArgumentError(`${entry.id}: not a URL: ${entry.url}`);
      }
      if (!/^(https?|blob|data):/i.test(url)) throw new InvalidArgumentError(`${entry.id}: unsupported URL scheme: ${url}`);
    }
    return {
      id: entry.id,
      name: entry.name,
      url,
      fileName: needUrl ? fileNameOf(url) || undefined : undefined,
      ...(entry.size !== undefined ? { size: entry.size } : {}),
      ...(entry.sha256 !== undefined ? { sha256: entry.sha256.toLowerCase() } : {}),
    };
  }

  private context(): TransferContext {
    return {
      backend: this.backend,
      registry: this.registry,
      checkQuota: (needed, name) => this.checkQuota(needed, name),
      changed: (id) => this.emit({ type: 'change', id }),
      progressIntervalMs: this.options.progressIntervalMs ?? 100,
    };
  }

  /** Throws StorageQuotaError when `needed` more bytes (plus one segment of working space) would not fit. */
  private async checkQuota(needed: number, name: string): Promise<void> {
    if (!(needed > 0)) return;
    const est = await this.storage()?.estimate?.().catch(() => undefined);
    if (est?.quota === undefined || est.usage === undefined) return;
    const available = Math.max(0, est.quota - est.usage);
    // The segment being committed can briefly exist twice (OPFS writes through a swap file).
    const headroom = Math.min(this.backend.segmentSize, needed);
    if (needed + headroom <= available) return;
    throw new StorageQuotaError(
      `Not enough storage for ${name}: it needs ${formatBytes(needed)} more (plus ${formatBytes(headroom)} of working space), ` +
        `but this site can store only ${formatBytes(available)} more (${formatBytes(est.usage)} used of ${formatBytes(est.quota)}). ` +
        `Delete stored models you no longer need, free disk space, or allow persistent storage (some browsers then allow more). Nothing was written.`,
      { needed, available },
    );
  }

  /** One download per id: in this page (the `active` map) and across tabs (Web Locks, when available). */
  private async run(
    id: string,
    opts: Omit<DownloadOptions, 'headers'>,
    fn: (signal: AbortSignal, onProgress: (p: DownloadProgress) => void) => Promise<ByteSource>,
  ): Promise<ByteSource> {
    if (this.active.has(id)) throw new DownloadError(`${id} is already being downloaded`, { kind: 'busy' });
    if (opts.signal?.aborted) throw opts.signal.reason ?? abortError('aborted');
    const ctrl = new AbortController();
    const forward = () => ctrl.abort(opts.signal?.reason ?? abortError('aborted'));
    opts.signal?.addEventListener('abort', forward, { once: true });
    const onProgress = (p: DownloadProgress) => {
      try {
        opts.onProgress?.(p);
      } finally {
        this.emit({ type: 'progress', progress: p });
      }
    };
    const p = this.withLock(id, () => fn(ctrl.signal, onProgress));
    this.active.set(id, { ctrl, done: p.then(() => undefined, () => undefined) });
    try {
      return await p;
    } finally {
      this.active.delete(id);
      opts.signal?.removeEventListener('abort', forward);
      this.emit({ type: 'change', id });
    }
  }

  private async withLock<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const lm = locks();
    if (!lm) return fn();
    let out: T | undefined;
    await lm.request(LOCK_PREFIX + id, { ifAvailable: true }, async (lock) => {
      if (!lock) throw new DownloadError(`${id} is being downloaded in another tab or window`, { kind: 'busy' });
      out = await fn();
    });
    return out as T;
  }

  private async backendFor(kind: BackendKind): Promise<SegmentBackend | null> {
    let b = this.backends.get(kind);
    if (!b) {
      b = kind === 'opfs' ? opfsBackend(undefined, this.options.segmentSize) : kind === 'cache' ? cacheBackend(undefined, this.options.segmentSize) : Promise.resolve(null);
      this.backends.set(kind, b);
    }
    return b;
  }

  private async removeNow(id: string, kind: BackendKind): Promise<void> {
    // Record first: the registry must never describe bytes that are gone.
    await this.registry.delete(id);
    await (await this.backendFor(kind))?.remove(id);
    this.emit({ type: 'change', id });
  }

  private async mustOpen(id: string): Promise<ByteSource> {
    const src = await this.openCached(id);
    if (!src) throw new DownloadError(`${id}: stored and verified, but the stored file cannot be read back`, { kind: 'network' });
    return src;
  }
}
