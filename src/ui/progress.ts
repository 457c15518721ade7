/**
 * Progress bars for long loads (bytes done, rate, time left) and a fetch that reports its download progress.
 */
import { VisualRwkvError } from '../errors';
import { describeProgress, type DownloadProgress } from '../storage/progress';

/** "8.7 MB", "512 B", "3.80 GB" (decimal units, as browsers show downloads). */
export function formatBytes(n: number): string {
  if (n < 1000) return `${Math.round(n)} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n / 1000;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} ${units[u]}`;
}

/** "5 s", "2 min 05 s", "1 h 03 min". */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

/** Seconds left at the average rate since `startMs`, or null while too early to tell. */
export function estimateSecondsLeft(loaded: number, total: number, elapsedMs: number): number | null {
  if (!(loaded > 0) || !(total > loaded) || elapsedMs < 250) return null;
  return ((total - loaded) / loaded) * (elapsedMs / 1000);
}

/**
 * One labelled `<progress>` with a detail line. Create it on a container holding a `<progress>` and an element
 * with class `progress-detail`; `data-state` goes pending → active → done (or error).
 */
export class ProgressBar {
  private readonly bar: HTMLProgressElement;
  private readonly detail: HTMLElement;
  private start = 0;
  /** Total bytes of the last byte count shown (0: none). */
  private bytes = 0;

  constructor(
    readonly el: HTMLElement,
    /** 'bytes' shows sizes, rate and time left; 'steps' shows "n of m <unit>". */
    private readonly kind: 'bytes' | 'steps' = 'bytes',
    private readonly unit = '',
  ) {
    this.bar = el.querySelector('progress')!;
    this.detail = el.querySelector('.progress-detail')!;
  }

  /** Show the bar empty with a note (e.g. "waiting"). */
  reset(note = ''): void {
    this.start = 0;
    this.bytes = 0;
    this.el.hidden = false;
    this.el.dataset.state = 'pending';
    this.bar.removeAttribute('value');
    this.detail.textContent = note;
  }

  hide(): void {
    this.el.hidden = true;
  }

  update(loaded: number, total: number): void {
    const now = performance.now();
    if (!this.start) this.start = now;
    this.el.hidden = false;
    const done = total > 0 && loaded >= total;
    this.el.dataset.state = done ? 'done' : 'active';
    if (total > 0) {
      this.bar.max = total;
      this.bar.value = Math.min(loaded, total);
    } else {
      this.bar.removeAttribute('value');
    }
    if (this.kind === 'steps') {
      this.detail.textContent = total > 0 ? `${loaded} of ${total}${this.unit ? ` ${this.unit}` : ''}` : '';
      return;
    }
    this.bytes = Math.max(total, loaded);
    const elapsed = now - this.start;
    const parts = [total > 0 ? `${formatBytes(loaded)} of ${formatBytes(total)}` : formatBytes(loaded)];
    if (elapsed >= 250 && loaded > 0) parts.push(`${formatBytes((loaded * 1000) / elapsed)}/s`);
    if (done) parts.push(`done in ${formatDuration(elapsed / 1000)}`);
    else {
      const left = estimateSecondsLeft(loaded, total, elapsed);
      if (left !== null) parts.push(`about ${formatDuration(left)} left`);
    }
    this.detail.textContent = parts.join(' · ');
  }

  /**
   * Show a ModelStore download: bytes of total (percent) · rate · time left while streaming, the phase otherwise
   * (checking stored data, connecting, verifying, stored). `verb` names the work ('Downloading', 'Copying').
   */
  download(p: DownloadProgress, verb = 'Downloading'): void {
    this.el.hidden = false;
    this.el.dataset.state = p.phase === 'complete' ? 'done' : 'active';
    if (p.total !== undefined && p.total > 0) {
      this.bar.max = p.total;
      this.bar.value = Math.min(p.loaded, p.total);
    } else this.bar.removeAttribute('value');
    this.bytes = Math.max(p.total ?? 0, p.loaded);
    const resumed = p.resumedFrom > 0 ? ` (resumed at ${formatBytes(p.resumedFrom)})` : '';
    const text: Record<DownloadProgress['phase'], string> = {
      checking: `Checking the stored part: ${formatBytes(p.loaded)}…`,
      connecting: p.loaded > 0 ? `Connecting to resume at ${formatBytes(p.loaded)}…` : 'Connecting…',
      downloading: `${verb}: ${describeProgress(p)}${resumed}`,
      verifying: `Verifying ${formatBytes(p.loaded)} (size and SHA-256)…`,
      complete: `${formatBytes(p.loaded)} stored on this device`,
    };
    this.detail.textContent = text[p.phase];
  }

  /** Busy without a byte count (indeterminate bar), e.g. "starting the runtime…"; `bytes` sets the size shown. */
  working(note: string, bytes?: number): void {
    if (bytes !== undefined) this.bytes = bytes;
    this.el.hidden = false;
    this.el.dataset.state = 'active';
    this.bar.removeAttribute('value');
    this.detail.textContent = this.bytes ? `${formatBytes(this.bytes)} · ${note}` : note;
  }

  /** Mark finished with a note, after the byte count if there was one (e.g. "267 kB · ready"). */
  finish(note: string): void {
    this.el.hidden = false;
    this.el.dataset.state = 'done';
    this.bar.max = 1;
    this.bar.value = 1;
    this.detail.textContent = this.bytes ? `${formatBytes(this.bytes)} · ${note}` : note;
  }

  fail(note: string): void {
    this.el.hidden = false;
    this.el.dataset.state = 'error';
    this.detail.textContent = note;
  }
}

/**
 * Download a URL into a Blob, reporting bytes as they arrive (Content-Length gives the total when the server sends
 * it). Throws VisualRwkvError with the URL and status on failure.
 * @example const blob = await fetchWithProgress('/models/vision_model.onnx', (l, t) => bar.update(l, t));
 */
export async function fetchWithProgress(url: string, onProgress: (loaded: number, total: number) => void, signal?: AbortSignal): Promise<Blob> {
  let res: Response;
  try {
    res = await fetch(url, { signal });
  } catch (e) {
    throw new VisualRwkvError(`${url}: download failed (${(e as Error).message}); check the URL and that the server allows this origin (CORS)`, { cause: e });
  }
  if (!res.ok) throw new VisualRwkvError(`${url}: download failed: HTTP ${res.status} ${res.statusText}`.trim());
  const total = Number(res.headers.get('content-length')) || 0;
  onProgress(0, total);
  if (!res.body) {
    const blob = await res.blob();
    onProgress(blob.size, blob.size);
    return blob;
  }
  const parts: Uint8Array<ArrayBuffer>[] = [];
  let loaded = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    loaded += value.byteLength;
    onProgress(loaded, Math.max(total, loaded));
  }
  if (total && loaded < total) throw new VisualRwkvError(`${url}: download ended after ${loaded} of ${total} bytes`);
  onProgress(loaded, loaded);
  return new Blob(parts);
}
