/**
 * Where the page's model and encoder come from — a catalogue entry, any URL, a local file, or a file already stored
 * on this device — and the GPU-ready copies of `.pth` checkpoints.
 *
 * - Catalogue and URL files go through `ModelStore.download` (streamed into OPFS / the Cache API, resumed after an
 *   interruption or a reload, size and SHA-256 checked when known, registered only when verified) and are then
 *   loaded from the stored file. A URL's id is `url:<absolute URL>`.
 * - A local file is used as it is, or first copied into the store (`ModelStore.importFile`, id
 *   `file:<name>:<size>:<lastModified>`) when the user asks to keep it.
 * - GPU-ready copy: the first load of a `.pth` records every weight buffer as uploaded (EngineOptions.recordTensors)
 *   into `gpu-ready:<source id>` (a `.safetensors`, see src/model/gpu-ready.ts); a later load of the same source
 *   uses that copy and skips the download/pickle walk/transposes/conversions. The copy records the source's SHA-256:
 *   if the stored source was replaced by different bytes, the copy is dropped.
 *
 * Without a usable store (no OPFS/Cache API), URLs are read directly with HTTP Range requests, as before.
 */
import { InvalidArgumentError } from '../errors';
import { GpuReadyRecorder } from '../model/gpu-ready';
import type { ModelConfig } from '../model/config';
import type { TensorSink, UploadedTensor } from '../model/upload';
import { catalogEntry, fileNameOf, type CatalogEntry } from '../storage/catalog';
import type { DownloadProgress } from '../storage/progress';
import type { StoredModel } from '../storage/registry';
import type { ModelStore } from '../storage/store';

/** What the user picked. */
export type SourceChoice =
  | { kind: 'catalog'; entry: CatalogEntry }
  | { kind: 'url'; url: string }
  | { kind: 'file'; file: File; keep: boolean }
  | { kind: 'stored'; id: string };

/** A model or encoder ready to hand to createVisualRwkv. */
export interface Obtained {
  /** A File over the stored bytes (or the picked file), or a URL when nothing can be stored. */
  source: File | string;
  /** Registry id of the source (also for files not stored: it keys their GPU-ready copy). */
  id: string;
  /** The file name shown to the user. */
  name: string;
  /** Whether the bytes are stored on this device (offline use). */
  stored: boolean;
  /** SHA-256 of the stored file, when known. */
  sha256?: string;
}

export interface ObtainOptions {
  signal?: AbortSignal;
  onProgress?: (p: DownloadProgress, verb: string) => void;
}

const GPU_READY_PREFIX = 'gpu-ready:';

/** The registry id of the GPU-ready copy of `id`. */
export function gpuReadyId(id: string): string {
  return GPU_READY_PREFIX + id;
}

/** Whether a stored record is a GPU-ready copy. */
export function isGpuReadyRecord(rec: Pick<StoredModel, 'id' | 'derivedFrom'>): boolean {
  return rec.id.startsWith(GPU_READY_PREFIX) && !!rec.derivedFrom;
}

/** The id of a file the user picked (stable across visits for the same file). */
export function fileId(file: File): string {
  return `file:${file.name}:${file.size}:${file.lastModified}`;
}

/** The registry id a choice is stored under. */
export function sourceId(c: SourceChoice): string {
  switch (c.kind) {
    case 'catalog':
      return c.entry.id;
    case 'url':
      return `url:${c.url}`;
    case 'file':
      return fileId(c.file);
    case 'stored':
      return c.id;
  }
}

/** The file name to show for a choice. */
export function choiceName(c: SourceChoice, rec?: StoredModel): string {
  switch (c.kind) {
    case 'catalog':
      return fileNameOf(c.entry.url);
    case 'url':
      return fileNameOf(c.url) || c.url;
    case 'file':
      return c.file.name;
    case 'stored':
      return rec?.fileName ?? catalogEntry(c.id)?.name ?? rec?.name ?? c.id;
  }
}

/** A choice from a form value: a catalogue id, a stored id, or a URL (resolved against `base`). */
export function choiceFromValue(value: string, base: string, storedIds: ReadonlySet<string> = new Set()): SourceChoice {
  const entry = catalogEntry(value);
  if (entry) return { kind: 'catalog', entry };
  if (storedIds.has(value)) return { kind: 'stored', id: value };
  let url: string;
  try {
    url = new URL(value, base).href;
  } catch {
    throw new InvalidArgumentError(`not a URL: ${value}`);
  }
  return { kind: 'url', url };
}

const named = (blob: Blob, name: string) => (blob instanceof File && blob.name === name ? blob : new File([blob], name, { type: blob.type }));

async function openStored(store: ModelStore, id: string): Promise<Obtained> {
  const rec = await store.get(id);
  const blob = await store.openBlob(id);
  if (!rec || !blob) throw new InvalidArgumentError(`${id} is not stored on this device (any more)`);
  const name = rec.fileName ?? rec.name;
  return { source: named(blob, name), id, name, stored: true, ...(rec.sha256 ? { sha256: rec.sha256 } : {}) };
}

/**
 * Get the bytes of a choice: download (or resume) into the store, copy a local file into it, or use what is
 * stored. Rejects with the store's errors (DownloadError, StorageQuotaError, the signal's reason when paused).
 */
export async function obtain(store: ModelStore | null, c: SourceChoice, opts: ObtainOptions = {}): Promise<Obtained> {
  const id = sourceId(c);
  const name = choiceName(c);
  const progress = (verb: string) => (p: DownloadProgress) => opts.onProgress?.(p, verb);
  if (c.kind === 'file') {
    if (!c.keep || !store) return { source: c.file, id, name, stored: false };
    await store.importFile(c.file, { id, name: c.file.name }, { signal: opts.signal, onProgress: progress('Copying to this device') });
    return openStored(store, id);
  }
  if (!store) {
    if (c.kind === 'stored') throw new InvalidArgumentError('this browser cannot store models here: choose a file or a URL');
    return { source: c.kind === 'catalog' ? c.entry.url : c.url, id, name, stored: false };
  }
  if (c.kind === 'stored') {
    const rec = await store.get(id);
    if (rec?.state !== 'partial' || !rec.url) return openStored(store, id);
    // An unfinished download: resume it.
    await store.download({ id, name: rec.name, url: rec.url, ...(rec.expectedSha256 ? { sha256: rec.expectedSha256 } : {}) }, { signal: opts.signal, onProgress: progress('Downloading') });
    return openStored(store, id);
  }
  const entry = c.kind === 'catalog' ? c.entry : { id, name, url: c.url };
  await store.download(entry, { signal: opts.signal, onProgress: progress('Downloading') });
  return openStored(store, id);
}

/** Whether a file is a PyTorch `.pth` (a zip: `PK\x03\x04`), i.e. worth a GPU-ready copy. */
export async function isPth(file: Blob): Promise<boolean> {
  const h = new Uint8Array(await file.slice(0, 4).arrayBuffer());
  return h[0] === 0x50 && h[1] === 0x4b && h[2] === 3 && h[3] === 4;
}

/**
 * The GPU-ready copy of source `id` as a File, or null. A copy made from different bytes than the stored source
 * (`sourceSha256` known on both sides and different) is deleted and null returned.
 */
export async function findGpuReady(store: ModelStore, id: string, sourceSha256?: string): Promise<File | null> {
  const rec = await store.get(gpuReadyId(id));
  if (rec?.state !== 'complete') return null;
  if (sourceSha256 && rec.derivedFromSha256 && rec.derivedFromSha256 !== sourceSha256) {
    await store.delete(rec.id).catch(() => undefined);
    return null;
  }
  const blob = await store.openBlob(rec.id);
  return blob ? named(blob, rec.fileName ?? `${rec.id}.safetensors`) : null;
}

/** A GPU-ready copy being written while its source loads. */
export interface GpuReadyCopy {
  /** Pass as `recordTensors`. Never fails the load: if the copy cannot be written it is abandoned silently. */
  readonly sink: TensorSink;
  /** After a successful load: write the header and register the copy. Resolves to its record. */
  finish(config: ModelConfig): Promise<StoredModel>;
  /** The load failed: store nothing. */
  abandon(reason: unknown): void;
}

/** Start writing the GPU-ready copy of `src` (a `.pth` about to be loaded) into the store. */
export function startGpuReadyCopy(store: ModelStore, src: Obtained, sizeHint?: number): GpuReadyCopy {
  const rec = new GpuReadyRecorder();
  let config: ModelConfig | null = null;
  let failed: unknown;
  const base = src.name.replace(/\.(pth|pt|bin|safetensors)$/i, '');
  const writing = store.writeFile(
    { id: gpuReadyId(src.id), name: `${src.name} — GPU-ready copy`, fileName: `${base}.gpu-ready.safetensors`, derivedFrom: src.id, ...(src.sha256 ? { derivedFromSha256: src.sha256 } : {}) },
    rec.body(),
    { head: () => rec.header({ source: src.id, config: config! }), ...(sizeHint !== undefined ? { sizeHint } : {}) },
  );
  writing.catch((e) => {
    failed = e;
    rec.fail(e); // a waiting sink call returns (below) and later records are dropped
  });
  return {
    sink: async (t: UploadedTensor) => {
      if (failed !== undefined) return;
      try {
        await rec.sink(t);
      } catch {
        // The copy is abandoned (write failed or quota); the model load goes on.
      }
    },
    async finish(cfg) {
      if (failed !== undefined) throw failed;
      config = cfg;
      rec.finish();
      await writing;
      return (await store.get(gpuReadyId(src.id)))!;
    },
    abandon(reason) {
      rec.fail(reason);
      writing.catch(() => undefined);
    },
  };
}
