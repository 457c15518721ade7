/**
 * Random-access byte sources for checkpoints: a File/Blob, a URL read with HTTP Range requests, or bytes in memory.
 * Loaders read small pieces (zip tail, headers, one tensor at a time) and never the whole file into one ArrayBuffer:
 * released `.pth` files are 3.8–16 GB, past the 2–4 GB ArrayBuffer limits.
 * Node-only files live in `node-source.ts`.
 */
import { WeightsFormatError } from '../errors';

/** A file of known size that can be read at any offset. */
export interface ByteSource {
  /** Shown in error messages: the file name or URL. */
  name: string;
  /** Total size in bytes. */
  size: number;
  /**
   * Exactly `length` bytes starting at `offset` (a fresh copy the caller may modify).
   * Throws WeightsFormatError if the range goes past `size` or the underlying read comes back short.
   */
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Release an underlying handle (Node files); optional. */
  close?(): Promise<void>;
}

/** Throws WeightsFormatError unless [offset, offset+length) lies inside the source. */
export function checkRange(src: { name: string; size: number }, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new WeightsFormatError(`${src.name}: invalid read of ${length} bytes at offset ${offset}`);
  }
  if (offset + length > src.size) {
    throw new WeightsFormatError(
      `${src.name}: need bytes ${offset}..${offset + length} but the file has only ${src.size} bytes; the file is truncated or an offset in it is corrupt`,
    );
  }
}

/**
 * A ByteSource over a Blob or File (reads are `blob.slice(a, b).arrayBuffer()`, so the browser never loads the
 * whole file).
 *
 * @example
 * const ckpt = await openCheckpoint(blobSource(input.files[0]));
 */
export function blobSource(blob: Blob, name?: string): ByteSource {
  const src: ByteSource = {
    name: name ?? ((blob as Partial<File>).name || 'blob'),
    size: blob.size,
    async read(offset, length) {
      checkRange(src, offset, length);
      const buf = new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer());
      if (buf.byteLength !== length) {
        throw new WeightsFormatError(`${src.name}: short read at offset ${offset}: wanted ${length} bytes, got ${buf.byteLength}`);
      }
      return buf;
    },
  };
  return src;
}

/**
 * A ByteSource over bytes already in memory (small files, tests). `read` returns copies.
 *
 * @example
 * const ckpt = await openCheckpoint(bytesSource(writeSafetensors(tensors), 'lm.safetensors'));
 */
export function bytesSource(bytes: Uint8Array, name = 'bytes'): ByteSource {
  const src: ByteSource = {
    name,
    size: bytes.byteLength,
    async read(offset, length) {
      checkRange(src, offset, length);
      return bytes.slice(offset, offset + length);
    },
  };
  return src;
}

export interface UrlSourceOptions {
  /** fetch implementation (default: the global one). */
  fetch?: typeof fetch;
  /** Extra request headers (e.g. Authorization). */
  headers?: Record<string, string>;
  /** Name for error messages (default: the URL). */
  name?: string;
}

/** `bytes A-B/SIZE` → {start, size}; size is undefined for `*`. */
function parseContentRange(h: string | null): { start: number; size?: number } | undefined {
  const m = h && /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(h);
  if (!m) return undefined;
  return { start: Number(m[1]), size: m[3] === '*' ? undefined : Number(m[3]) };
}

function noRangeError(name: string, status: number, what: string): WeightsFormatError {
  return new WeightsFormatError(
    `${name}: the server ignored the HTTP Range header (status ${status} for ${what}) and would send the whole file; ` +
      `checkpoints are read piece by piece, so the server must support Range requests (status 206). ` +
      `Serve the file from a server with Range support, or open it as a local file.`,
  );
}

/**
 * A ByteSource over a URL: the size comes from a `Range: bytes=0-0` GET (Content-Range), falling back to a HEAD
 * (Content-Length) when Content-Range is not readable (cross-origin without Access-Control-Expose-Headers); every
 * read is one `Range: bytes=a-b` GET that must answer 206. A server that ignores Range (status 200) is an error
 * rather than a silent multi-gigabyte download.
 *
 * @example
 * const ckpt = await openCheckpoint(await urlSource('https://huggingface.co/.../VisualRWKV-v060-1B6.pth'));
 */
export async function urlSource(url: string, init?: UrlSourceOptions): Promise<ByteSource> {
  const f = init?.fetch ?? globalThis.fetch.bind(globalThis);
  const name = init?.name ?? url;
  const headers = init?.headers ?? {};

  const get = async (range: string, what: string): Promise<Response> => {
    let res: Response;
    try {
      res = await f(url, { headers: { ...headers, Range: range } });
    } catch (e) {
      throw new WeightsFormatError(`${name}: cannot fetch ${what}: ${(e as Error)?.message ?? e}`, { cause: e });
    }
    return res;
  };

  const probe = await get('bytes=0-0', 'the first byte');
  let size: number | undefined;
  if (probe.status === 206) {
    size = parseContentRange(probe.headers.get('content-range'))?.size;
    await probe.arrayBuffer().catch(() => undefined);
  } else if (probe.status === 416) {
    // Range not satisfiable: an empty file (Content-Range "bytes */0").
    await probe.body?.cancel().catch(() => undefined);
    size = 0;
  } else {
    await probe.body?.cancel().catch(() => undefined);
    if (probe.status === 200) throw noRangeError(name, 200, `'Range: bytes=0-0'`);
    throw new WeightsFormatError(`${name}: HTTP ${probe.status} ${probe.statusText} while probing the file size`);
  }
  if (size === undefined) {
    let head: Response;
    try {
      head = await f(url, { method: 'HEAD', headers });
    } catch (e) {
      throw new WeightsFormatError(`${name}: cannot fetch the file size (HEAD): ${(e as Error)?.message ?? e}`, { cause: e });
    }
    const len = head.headers.get('content-length');
    if (!head.ok || len === null || !/^\d+$/.test(len)) {
      throw new WeightsFormatError(`${name}: cannot determine the file size (no readable Content-Range or Content-Length)`);
    }
    size = Number(len);
  }

  const src: ByteSource = {
    name,
    size,
    async read(offset, length) {
      checkRange(src, offset, length);
      if (length === 0) return new Uint8Array(0);
      const what = `bytes ${offset}-${offset + length - 1}`;
      const res = await get(`bytes=${offset}-${offset + length - 1}`, what);
      if (res.status !== 206) {
        await res.body?.cancel().catch(() => undefined);
        if (res.status === 200) throw noRangeError(name, 200, `'Range: ${what}'`);
        throw new WeightsFormatError(`${name}: HTTP ${res.status} ${res.statusText} reading ${what}`);
      }
      const cr = parseContentRange(res.headers.get('content-range'));
      if (cr && cr.start !== offset) {
        await res.body?.cancel().catch(() => undefined);
        throw new WeightsFormatError(`${name}: asked for ${what}, the server answered with Content-Range starting at ${cr.start}`);
      }
      let buf: Uint8Array;
      try {
        buf = new Uint8Array(await res.arrayBuffer());
      } catch (e) {
        throw new WeightsFormatError(`${name}: reading ${what} failed: ${(e as Error)?.message ?? e}`, { cause: e });
      }
      if (buf.byteLength !== length) {
        throw new WeightsFormatError(`${name}: short read for ${what}: got ${buf.byteLength} of ${length} bytes`);
      }
      return buf;
    },
  };
  return src;
}
