/**
 * A one-line progress bar on stderr (bytes, %, rate, ETA), redrawn in place on a terminal; when stderr is not a
 * terminal (logs, CI) it prints a plain line at each quarter instead.
 */
export class ProgressBar {
  private start = Date.now();
  private last = 0;
  private quarter = -1;
  constructor(private readonly title: string) {}

  update(loaded: number, total: number): void {
    if (!process.stderr.isTTY) {
      const q = total > 0 ? Math.floor((4 * loaded) / total) : 0;
      if (q > this.quarter) {
        this.quarter = q;
        process.stderr.write(this.line(loaded, total).trimEnd() + '\n');
      }
      return;
    }
    const now = Date.now();
    if (now - this.last < 100 && loaded < total) return;
    this.last = now;
    process.stderr.write(`\r${this.line(loaded, total)}`);
  }

  done(): void {
    if (process.stderr.isTTY) process.stderr.write('\n');
  }

  line(loaded: number, total: number): string {
    const frac = total > 0 ? Math.min(1, loaded / total) : 0;
    const secs = (Date.now() - this.start) / 1000;
    const rate = secs > 0 ? loaded / secs : 0;
    const eta = rate > 0 ? (total - loaded) / rate : 0;
    const w = 24;
    const bar = '#'.repeat(Math.round(frac * w)).padEnd(w, '.');
    return `${this.title} [${bar}] ${(frac * 100).toFixed(0)}% ${mb(loaded)}/${mb(total)} MB ${mb(rate)} MB/s ETA ${eta.toFixed(0)}s   `;
  }
}

function mb(n: number): string {
  return (n / 1e6).toFixed(1);
}
