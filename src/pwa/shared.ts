/**
 * What the service worker (sw.ts), the page (register.ts) and tests agree on: cache names, which URLs are model
 * files, the message protocol, and HTTP Range parsing. No DOM, no service-worker globals: importable anywhere.
 */

/** App-shell caches are `SHELL_CACHE_PREFIX + <build version>`; activating a new version deletes the others. */
export const SHELL_CACHE_PREFIX = 'visualrwkv-shell-';
/**
 * Model and encoder files fetched by URL. Not tied to the app version (an app update keeps downloaded models); the
 * suffix changes only if the way entries are stored changes.
 */
export const MODEL_CACHE = 'visualrwkv-url-models-v1';

/** Same-origin URLs with these extensions are model files the service worker keeps for offline use. */
export const MODEL_EXTENSIONS = ['.pth', '.safetensors', '.onnx'] as const;

/** Whether a URL path names a model or encoder file (`.pth`, `.safetensors`, `.onnx`, any case). */
export function isModelPath(pathname: string): boolean {
  const p = pathname.toLowerCase();
  return MODEL_EXTENSIONS.some((ext) => p.endsWith(ext));
}

/** Headers every response the service worker builds carries, so the page stays cross-origin isolated offline. */
export const ISOLATION_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
});

/** Page → service worker messages (replies go to the MessagePort sent along). */
export type SwRequest =
  | { type: 'cache-urls'; urls: string[] }
  | { type: 'skip-waiting' }
  | { type: 'version' };

/** Result for one URL of a `cache-urls` request. */
export interface CacheResult {
  url: string;
  /** 'cached': stored now; 'present': was already stored; 'skipped': not a same-origin model URL; 'failed'. */
  status: 'cached' | 'present' | 'skipped' | 'failed';
  bytes?: number;
  error?: string;
}

export type SwReply = { type: 'cache-result'; results: CacheResult[] } | { type: 'version'; version: string };

/** A satisfiable byte range, inclusive. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Parse a `Range` header against a body of `size` bytes: one `bytes=a-b`, `bytes=a-` or `bytes=-n` range.
 * Returns null when the header should be ignored (absent, other units, several ranges: answer 200 with the whole
 * body) and 'unsatisfiable' when the range lies outside the body (answer 416).
 * @example parseRange('bytes=0-0', 100) // { start: 0, end: 0 }
 * @example parseRange('bytes=-10', 100) // { start: 90, end: 99 }
 */
export function parseRange(header: string | null, size: number): ByteRange | 'unsatisfiable' | null {
  if (!header) return null;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m || (!m[1] && !m[2])) return null;
  let start: number;
  let end: number;
  if (m[1]) {
    start = Number(m[1]);
    end = m[2] ? Math.min(Number(m[2]), size - 1) : size - 1;
    if (m[2] && Number(m[2]) < start) return null; // syntactically invalid: ignore (RFC 9110 §14.2)
  } else {
    const n = Number(m[2]);
    if (n === 0) return 'unsatisfiable';
    start = Math.max(0, size - n);
    end = size - 1;
  }
  if (start >= size) return 'unsatisfiable';
  return { start, end };
}
