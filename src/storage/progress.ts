/**
 * Download progress arithmetic: a sliding-window rate meter, time left, percentages and the human-readable forms
 * the cache manager shows. Pure functions (times in milliseconds, rates in bytes per second).
 */

/** A download's progress as reported to `onProgress` (and to `ModelStore.subscribe` listeners). */
export interface DownloadProgress {
  id: string;
  /** 'checking': verifying stored partial data before resuming (re-hashing it when no hash state was saved);
   *  'connecting': waiting for the server's answer; 'downloading': bytes are streaming; 'verifying': the digest is
   *  being checked; 'complete': verified and registered. */
  phase: 'checking' | 'connecting' | 'downloading' | 'verifying' | 'complete';
  /** Bytes stored so far, including those kept from earlier attempts. */
  loaded: number;
  /** Total size when known (catalogue, Content-Length or Content-Range). */
  total?: number;
  /** 0..100 when the total is known. */
  percent?: number;
  /** Recent transfer rate in bytes/s (0 until it can be measured). */
  rate: number;
  /** Seconds left at the recent rate, when the total and a rate are known. */
  etaSeconds?: number;
  /** Bytes that were already stored when this attempt started (0 for a fresh download). */
  resumedFrom: number;
}

/**
 * Transfer rate over the last `windowMs` (default 5 s): (bytes at the newest sample − bytes at the oldest sample in
 * the window) / their time apart. Feed it the running byte count of this attempt.
 *
 * @example
 * const meter = new RateMeter();
 * meter.add(bytesSoFar, performance.now());
 * const bps = meter.rate();
 */
export class RateMeter {
  private samples: { t: number; bytes: number }[] = [];

  constructor(
    private readonly windowMs = 5000,
    /** A rate over less than this much time is too noisy to show. */
    private readonly minSpanMs = 250,
  ) {}

  /** Record that `bytes` (cumulative) had arrived at time `t` (ms). */
  add(bytes: number, t: number): void {
    const s = this.samples;
    if (s.length && t < s[s.length - 1]!.t) return; // clocks do not go backwards; ignore stale samples
    s.push({ t, bytes });
    // Keep one sample at or before the window start so the window is always fully covered.
    while (s.length > 2 && s[1]!.t <= t - this.windowMs) s.shift();
  }

  /** Bytes per second over the window, or 0 while fewer than `minSpanMs` have been observed. */
  rate(): number {
    const s = this.samples;
    if (s.length < 2) return 0;
    const a = s[0]!;
    const b = s[s.length - 1]!;
    const span = b.t - a.t;
    if (span < this.minSpanMs) return 0;
    return ((b.bytes - a.bytes) * 1000) / span;
  }

  reset(): void {
    this.samples = [];
  }
}

/** Seconds to move `remaining` bytes at `rate` bytes/s; undefined when either is unknown or the rate is 0. */
export function etaSeconds(remaining: number | undefined, rate: number): number | undefined {
  if (remaining === undefined || !Number.isFinite(remaining) || remaining < 0) return undefined;
  if (remaining === 0) return 0;
  if (!(rate > 0)) return undefined;
  return remaining / rate;
}

/** 100·loaded/total, clamped to 0..100; undefined without a positive total. */
export function percentOf(loaded: number, total: number | undefined): number | undefined {
  if (total === undefined || !(total > 0)) return total === 0 ? 100 : undefined;
  return Math.min(100, Math.max(0, (100 * loaded) / total));
}

/** "3.81 GB", "512 B", "8.70 MB" (decimal units, as Hugging Face and browsers show file sizes). */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return '?';
  if (Math.abs(n) < 1000) return `${Math.round(n)} B`;
  const units = ['kB', 'MB', 'GB', 'TB', 'PB'];
  let v = n / 1000;
  let u = 0;
  while (Math.abs(v) >= 999.995 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  const a = Math.abs(v);
  return `${a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toFixed(2)} ${units[u]}`;
}

/** "12.3 MB/s". */
export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(bytesPerSecond)}/s`;
}

/** "5 s", "2 min 05 s", "1 h 03 min". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

/** One line for a progress label: "1.20 GB of 3.81 GB (31%) · 12.5 MB/s · 3 min 29 s left". */
export function describeProgress(p: Pick<DownloadProgress, 'loaded' | 'total' | 'percent' | 'rate' | 'etaSeconds'>): string {
  const parts = [
    p.total !== undefined
      ? `${formatBytes(p.loaded)} of ${formatBytes(p.total)} (${Math.floor(p.percent ?? percentOf(p.loaded, p.total) ?? 0)}%)`
      : formatBytes(p.loaded),
  ];
  if (p.rate > 0) parts.push(formatRate(p.rate));
  if (p.etaSeconds !== undefined && p.rate > 0) parts.push(`${formatDuration(p.etaSeconds)} left`);
  return parts.join(' · ');
}
