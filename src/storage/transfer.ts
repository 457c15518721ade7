/**
 * The transfer loop behind ModelStore.download / importFile: continue a stored partial file (or start one), stream
 * the rest into segments while hashing, check size and digest, and only then register the file as complete.
 *
 * Durability order: a segment is committed to the backend first, then the registry record (bytes, segment lengths,
 * hash state over exactly those bytes) is written. A reload between the two leaves the registry one segment
 * behind, and that segment is simply written again. An interruption (network error, abort) commits the segment in
 * progress, so a resume starts at the last byte received. A failed write aborts its segment: the registry still
 * describes the last committed state.
 */
import { DownloadError, StorageQuotaError } from '../errors';
import type { SegmentBackend, SegmentWriter } from './backends';
import type { BodySource, OpenedBody } from './download';
import { etaSeconds, percentOf, RateMeter, type DownloadProgress } from './progress';
import type { Registry, StoredModel } from './registry';
import { Sha256 } from './sha256';

export interface TransferContext {
  backend: SegmentBackend;
  registry: Registry;
  /** Throws StorageQuotaError when `needed` more bytes would not fit. */
  checkQuota(needed: number, name: string): Promise<void>;
  /** Called after each registry change of `id`. */
  changed(id: string): void;
  /** Minimum time between two 'downloading' progress reports. */
  progressIntervalMs: number;
}

/** What is being stored. */
export interface TransferTarget {
  id: string;
  name: string;
  url?: string;
  fileName?: string;
  size?: number;
  /** Lowercase hex. */
  sha256?: string;
}

export interface TransferOptions {
  signal?: AbortSignal;
  onProgress?: (p: DownloadProgress) => void;
}

const now = () => (typeof performance !== 'undefined' ? performance.now() : Date.now());

function isQuotaError(e: unknown): boolean {
  const n = (e as DOMException)?.name;
  return n === 'QuotaExceededError' || e instanceof StorageQuotaError;
}

/** Store `target` from `src`, resuming the registry's partial record when it is compatible. */
export async function transfer(ctx: TransferContext, target: TransferTarget, src: BodySource, opts: TransferOptions = {}): Promise<StoredModel> {
  const life = { ended: false, timer: undefined as ReturnType<typeof setTimeout> | undefined };
  try {
    return await transferOnce(ctx, target, src, opts, life);
  } finally {
    life.ended = true;
    clearTimeout(life.timer);
  }
}

async function transferOnce(
  ctx: TransferContext,
  target: TransferTarget,
  src: BodySource,
  opts: TransferOptions,
  life: { ended: boolean; timer: ReturnType<typeof setTimeout> | undefined },
): Promise<StoredModel> {
  const { backend, registry } = ctx;
  const { id } = target;
  const signal = opts.signal;
  const segSize = backend.segmentSize;

  let rec = await registry.get(id);
  let segments: number[] = [];
  let stored = 0;
  let hasher = new Sha256();
  let total = target.size;
  let resumedFrom = 0;
  const meter = new RateMeter();
  let lastReport = -Infinity;
  let phase: DownloadProgress['phase'] = 'checking';

  // A throttled report is delivered later (trailing), so the last bytes before a stall are shown too.
  const report = (force = false) => {
    if (!opts.onProgress || life.ended) return;
    const t = now();
    if (!force && t - lastReport < ctx.progressIntervalMs) {
      life.timer ??= setTimeout(() => {
        life.timer = undefined;
        report(true);
      }, ctx.progressIntervalMs - (t - lastReport));
      return;
    }
    clearTimeout(life.timer);
    life.timer = undefined;
    lastReport = t;
    const rate = meter.rate();
    opts.onProgress({
      id,
      phase,
      loaded: stored,
      total,
      percent: percentOf(stored, total),
      rate,
      etaSeconds: total !== undefined ? etaSeconds(total - stored, rate) : undefined,
      resumedFrom,
    });
  };
  const setPhase = (p: DownloadProgress['phase']) => {
    phase = p;
    report(true);
  };
  const discard = async () => {
    if (rec) {
      await registry.delete(id);
      ctx.changed(id);
    }
    await backend.remove(id);
    rec = undefined;
    segments = [];
    stored = 0;
    hasher = new Sha256();
    meter.reset();
  };
  const checkAborted = () => {
    if (signal?.aborted) throw signal.reason ?? new DOMException('The download was aborted', 'AbortError');
  };

  // 1. Can the stored partial file be continued?
  if (rec) {
    const compatible =
      rec.state === 'partial' && rec.backend === backend.kind && rec.url === target.url &&
      (target.size === undefined || rec.total === undefined || rec.total === target.size) &&
      (target.sha256 === undefined || rec.expectedSha256 === undefined || rec.expectedSha256 === target.sha256) &&
      (target.size === undefined || rec.bytes <= target.size);
    if (!compatible) await discard();
  }
  if (rec) {
    setPhase('checking');
    const blobs = await backend.read(id, rec.segments.length);
    if (!blobs || blobs.some((b, i) => b.size !== rec!.segments[i])) {
      await discard(); // the stored bytes are not what the registry says (site data partly cleared?)
    } else {
      segments = rec.segments.slice();
      stored = rec.bytes;
      let restored: Sha256 | undefined;
      if (rec.hash && rec.hash.length === stored) {
        try {
          restored = Sha256.fromState(rec.hash);
        } catch {
          restored = undefined;
        }
      }
      if (restored) hasher = restored;
      else {
        // No usable saved state: hash the stored bytes again ('checking' progress counts the bytes hashed).
        hasher = new Sha256();
        stored = 0;
        for (const b of blobs) {
          const reader = (b.stream() as ReadableStream<Uint8Array>).getReader();
          for (;;) {
            checkAborted();
            const { done, value } = await reader.read();
            if (done) break;
            hasher.update(value);
            stored += value.length;
            report();
          }
        }
      }
      resumedFrom = stored;
    }
  }
  if (target.size !== undefined) await ctx.checkQuota(target.size - stored, target.name);

  // 2. Fetch the rest (at most one restart: server ignored Range, or the file changed since the partial).
  let opened: OpenedBody | undefined;
  for (let attempt = 0; ; attempt++) {
    checkAborted();
    setPhase('connecting');
    opened = await src.open(stored, signal);
    if (opened.mode === 'restart' && stored > 0) await discard();
    const changed =
      rec && stored > 0 &&
      ((rec.etag !== undefined && opened.etag !== undefined && rec.etag !== opened.etag) ||
        (rec.etag === undefined && rec.lastModified !== undefined && opened.lastModified !== undefined && rec.lastModified !== opened.lastModified));
    const tooLong = opened.total !== undefined && stored > opened.total;
    if ((changed || tooLong) && attempt === 0) {
      await opened.cancel();
      await discard();
      continue;
    }
    break;
  }
  resumedFrom = stored;
  if (opened.total !== undefined) {
    if (target.size !== undefined && opened.total !== target.size) {
      await opened.cancel();
      if (stored > 0) await discard();
      throw new DownloadError(
        `${target.name}: the server's file has ${opened.total} bytes but ${target.size} were expected; nothing was kept (wrong URL, or the catalogue is out of date)`,
        { kind: 'size' },
      );
    }
    total = opened.total;
    if (opened.mode !== 'done') {
      try {
        await ctx.checkQuota(total - stored, target.name);
      } catch (e) {
        await opened.cancel();
        throw e;
      }
    }
  }
  const validators = { etag: opened.etag, lastModified: opened.lastModified };

  const record = (state: StoredModel['state']): StoredModel => {
    const t = Date.now();
    return {
      id,
      name: target.name,
      ...(target.url !== undefined ? { url: target.url } : {}),
      ...(target.fileName !== undefined ? { fileName: target.fileName } : {}),
      state,
      backend: backend.kind,
      bytes: stored,
      ...(total !== undefined ? { total } : {}),
      segments: segments.slice(),
      ...(target.sha256 !== undefined ? { expectedSha256: target.sha256 } : {}),
      ...(state === 'partial' ? { hash: hasher.saveState() } : {}),
      ...(validators.etag !== undefined ? { etag: validators.etag } : {}),
      ...(validators.lastModified !== undefined ? { lastModified: validators.lastModified } : {}),
      createdAt: rec?.createdAt ?? t,
      updatedAt: t,
    };
  };

  // 3. Stream into segments.
  if (opened.mode !== 'done' && opened.body) {
    setPhase('downloading');
    meter.add(stored, now());
    const reader = opened.body.getReader();
    let writer: SegmentWriter | null = null;
    const commit = async () => {
      const w = writer;
      writer = null;
      if (!w) return;
      if (w.written === 0) return void (await w.abort());
      try {
        await w.commit();
      } catch (e) {
        await w.abort();
        throw e;
      }
      segments.push(w.written);
      const next = record('partial');
      await registry.put(next);
      rec = next;
      ctx.changed(id);
    };
    let readError: unknown;
    try {
      for (;;) {
        let chunk: Uint8Array;
        try {
          const r = await reader.read();
          if (r.done) break;
          chunk = r.value;
        } catch (e) {
          readError = e;
          break;
        }
        if (total !== undefined && stored + chunk.length > total) {
          await reader.cancel().catch(() => undefined);
          await writer?.abort();
          writer = null;
          await discard();
          throw new DownloadError(`${target.name}: the server sent more than the announced ${total} bytes; the download was discarded`, { kind: 'size' });
        }
        while (chunk.length > 0) {
          writer ??= await backend.begin(id, segments.length);
          const part: Uint8Array = chunk.subarray(0, segSize - writer.written);
          await writer.write(part);
          hasher.update(part);
          stored += part.length;
          chunk = chunk.subarray(part.length);
          if (writer.written >= segSize) await commit();
        }
        meter.add(stored, now());
        report();
        if (signal?.aborted) {
          readError = signal.reason ?? new DOMException('The download was aborted', 'AbortError');
          await reader.cancel().catch(() => undefined);
          break;
        }
      }
      // Keep every byte received, also after an interruption: they are hashed and counted.
      await commit();
    } catch (e) {
      // A failed write (or commit): drop the open segment; the registry still describes the last commit.
      await (writer as SegmentWriter | null)?.abort();
      await reader.cancel().catch(() => undefined);
      if (e instanceof DownloadError) throw e;
      if (isQuotaError(e)) {
        throw new StorageQuotaError(`${target.name}: the browser refused to store more data (storage quota exceeded) after ${stored} bytes; free space and resume`, { cause: e });
      }
      throw e;
    }
    report(true);
    if (readError !== undefined) {
      if (signal?.aborted || (readError as DOMException)?.name === 'AbortError') throw signal?.reason ?? readError;
      throw new DownloadError(
        `${target.name}: the connection broke after ${stored}${total !== undefined ? ` of ${total}` : ''} bytes (${(readError as Error)?.message ?? readError}); the bytes so far are kept, download again to resume`,
        { cause: readError, kind: 'network' },
      );
    }
  }
  if (total !== undefined && stored < total) {
    throw new DownloadError(`${target.name}: the server closed the connection after ${stored} of ${total} bytes; the bytes so far are kept, download again to resume`, { kind: 'network' });
  }
  total = stored;

  // 4. Verify, then register as complete.
  setPhase('verifying');
  if (target.size !== undefined && stored !== target.size) {
    await discard();
    throw new DownloadError(`${target.name}: got ${stored} bytes but ${target.size} were expected; the download was discarded`, { kind: 'size' });
  }
  const digest = hasher.hex();
  if (target.sha256 !== undefined && digest !== target.sha256) {
    await discard();
    throw new DownloadError(
      `${target.name}: SHA-256 mismatch (expected ${target.sha256}, got ${digest}): the file is corrupt or not the expected one; the download was discarded`,
      { kind: 'sha256' },
    );
  }
  const blobs = await backend.read(id, segments.length);
  if (!blobs || blobs.some((b, i) => b.size !== segments[i])) {
    await discard();
    throw new DownloadError(`${target.name}: the stored segments do not read back with their recorded sizes; the download was discarded`, { kind: 'network' });
  }
  const done: StoredModel = { ...record('complete'), sha256: digest, completedAt: Date.now() };
  await registry.put(done);
  ctx.changed(id);
  setPhase('complete');
  return done;
}
