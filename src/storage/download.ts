/**
 * Where downloaded bytes come from: an HTTP(S) URL read with `Range: bytes=<stored>-` to resume, or a local
 * File/Blob. Both answer "give me the file from byte N" with one of: the body from N (`continue`), the whole file
 * from byte 0 because the server ignored the Range header (`restart`, the caller discards what it had), or nothing
 * left to read (`done`). The transfer loop (transfer.ts) does not care which kind of source it reads.
 */
import { DownloadError } from '../errors';

/** What to download: `id` keys the registry; `size` (exact bytes) and `sha256` (hex) are verified when given. */
export interface DownloadEntry {
  id: string;
  /** Shown in the cache manager and in messages. */
  name: string;
  url: string;
  /** Exact size in bytes; a server total that differs is an error (DownloadError 'size'). */
  size?: number;
  /** Expected SHA-256 as hex; a mismatch discards the download (DownloadError 'sha256'). */
  sha256?: string;
}

/** The answer of a BodySource to "the file from byte `offset`". */
export interface OpenedBody {
  /** 'continue': `body` starts at `offset`; 'restart': `body` is the whole file from byte 0; 'done': the stored
   *  bytes already are the whole file. */
  mode: 'continue' | 'restart' | 'done';
  body?: ReadableStream<Uint8Array>;
  /** Total file size when the source says (Content-Range total, Content-Length, Blob size). */
  total?: number;
  /** Validators: a resume whose validators differ from the stored ones means the file changed. */
  etag?: string;
  lastModified?: string;
  /** Release the body without reading it. */
  cancel(): Promise<void>;
}

/** A file that can be read from any offset onwards. */
export interface BodySource {
  /** For messages: the URL or file name. */
  readonly label: string;
  open(offset: number, signal?: AbortSignal): Promise<OpenedBody>;
}

/** `bytes A-B/SIZE` or `bytes *\/SIZE` → start (undefined for `*`) and total (undefined for `*` size). */
export function parseContentRange(h: string | null): { start?: number; end?: number; total?: number } | undefined {
  if (!h) return undefined;
  const m = /^\s*bytes\s+(?:(\d+)-(\d+)|\*)\s*\/\s*(\d+|\*)\s*$/i.exec(h);
  if (!m) return undefined;
  return {
    start: m[1] !== undefined ? Number(m[1]) : undefined,
    end: m[2] !== undefined ? Number(m[2]) : undefined,
    total: m[3] === '*' ? undefined : Number(m[3]),
  };
}

function intHeader(res: Response, name: string): number | undefined {
  const v = res.headers.get(name);
  return v !== null && /^\s*\d+\s*$/.test(v) ? Number(v) : undefined;
}

/** An ETag usable to detect a changed file (weak validators say nothing about bytes; ignore them). */
function strongEtag(res: Response): string | undefined {
  const v = res.headers.get('etag');
  return v && !/^\s*W\//.test(v) ? v.trim() : undefined;
}

const cancelBody = (res: Response) => async () => {
  await res.body?.cancel().catch(() => undefined);
};

function isAbort(e: unknown, signal?: AbortSignal): boolean {
  return !!signal?.aborted || (e as DOMException)?.name === 'AbortError';
}

/**
 * A BodySource over a URL. The first request has no Range header; a resume sends `Range: bytes=<offset>-` (a
 * CORS-safelisted header, so no preflight unless `headers` adds others). 206 must start at `offset`; 200 means the
 * server ignored the Range (→ restart); 416 with a total equal to `offset` means nothing is left.
 * Cross-origin servers must expose Content-Range (Access-Control-Expose-Headers) for the total to be checked on a
 * resume; Hugging Face does.
 */
export function httpBodySource(url: string, fetchFn: typeof fetch = globalThis.fetch.bind(globalThis), headers: Record<string, string> = {}): BodySource {
  const open = async (offset: number, signal?: AbortSignal): Promise<OpenedBody> => {
    let res: Response;
    try {
      res = await fetchFn(url, { headers: offset > 0 ? { ...headers, Range: `bytes=${offset}-` } : headers, signal, cache: 'no-store' });
    } catch (e) {
      if (isAbort(e, signal)) throw signal?.reason ?? e;
      throw new DownloadError(
        `cannot fetch ${url}: ${(e as Error)?.message ?? e} (offline, the server is unreachable, or it does not allow cross-origin requests from this page)`,
        { cause: e, kind: 'network' },
      );
    }
    const etag = strongEtag(res);
    const lastModified = res.headers.get('last-modified') ?? undefined;
    const cancel = cancelBody(res);
    if (res.status === 206) {
      const cr = parseContentRange(res.headers.get('content-range'));
      const len = intHeader(res, 'content-length');
      if (cr && cr.start !== offset) {
        // A server answering some other range: start over from a plain GET.
        await cancel();
        return offset > 0 ? open(0, signal) : errorFor(res, `answered bytes from ${cr.start} to a request for the whole file`);
      }
      // Without a readable Content-Range (cross-origin, not exposed) the total is offset + remaining length.
      const total = cr?.total ?? (len !== undefined ? offset + len : undefined);
      return { mode: 'continue', body: res.body ?? undefined, total, etag, lastModified, cancel };
    }
    if (res.status === 200) {
      return { mode: offset > 0 ? 'restart' : 'continue', body: res.body ?? undefined, total: intHeader(res, 'content-length'), etag, lastModified, cancel };
    }
    if (res.status === 416 && offset > 0) {
      await cancel();
      const total = parseContentRange(res.headers.get('content-range'))?.total;
      if (total === offset) return { mode: 'done', total, etag, lastModified, cancel: async () => undefined };
      return open(0, signal);
    }
    await cancel();
    return errorFor(res);
  };
  return { label: url, open };

  function errorFor(res: Response, what?: string): never {
    const hint =
      res.status === 401 || res.status === 403
        ? ' (the file needs a login or accepting a licence on the hosting site)'
        : res.status === 404
          ? ' (wrong URL, or the file was removed)'
          : res.status >= 500
            ? ' (server error: try again later)'
            : '';
    throw new DownloadError(`${url}: ${what ?? `HTTP ${res.status} ${res.statusText}`.trim()}${hint}`, { kind: 'http' });
  }
}

/** A BodySource over a local File/Blob (the "validators" of a File are its size and modification time). */
export function blobBodySource(blob: Blob, label?: string): BodySource {
  const f = blob as Partial<File>;
  const stamp = `${blob.size}-${f.lastModified ?? 0}`;
  return {
    label: label ?? (f.name || 'local file'),
    async open(offset) {
      if (offset > 0 && offset === blob.size) return { mode: 'done', total: blob.size, etag: stamp, cancel: async () => undefined };
      const restart = offset > blob.size; // not this file: start over
      const body = blob.slice(restart ? 0 : offset).stream() as ReadableStream<Uint8Array>;
      return {
        mode: restart ? 'restart' : 'continue',
        body,
        total: blob.size,
        etag: stamp,
        cancel: async () => {
          await body.cancel().catch(() => undefined);
        },
      };
    },
  };
}
