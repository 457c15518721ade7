/** Turning a ModelSource (URL, path, Blob, bytes, ByteSource) into a ByteSource or bytes, in Node and browsers. */
import type { ModelSource } from '../types';
import { blobSource, bytesSource, urlSource, type ByteSource } from '../weights/source';
import { InvalidArgumentError } from '../errors';

export const isNode = typeof process !== 'undefined' && !!process.versions?.node && typeof window === 'undefined';

function isByteSource(x: unknown): x is ByteSource {
  return !!x && typeof x === 'object' && typeof (x as ByteSource).read === 'function' && typeof (x as ByteSource).size === 'number';
}

/** Open a model source for range reads (never loading it whole). */
export async function openSource(src: ModelSource): Promise<ByteSource> {
  if (isByteSource(src)) return src;
  if (src instanceof Uint8Array) return bytesSource(src, 'bytes');
  if (typeof Blob !== 'undefined' && src instanceof Blob) return blobSource(src, (src as File).name);
  if (typeof src === 'string') {
    if (/^(https?|blob|data):/i.test(src)) return urlSource(src);
    if (isNode) {
      const { nodeFileSource } = await import('../weights/node-source');
      return nodeFileSource(src);
    }
    return urlSource(new URL(src, globalThis.location?.href).href);
  }
  throw new InvalidArgumentError('unsupported model source: give a URL, a File/Blob, bytes, or (in Node) a path');
}

/** Read a (small) source whole, e.g. an ONNX encoder. */
export async function readAll(src: ModelSource): Promise<Uint8Array> {
  if (src instanceof Uint8Array) return src;
  const s = await openSource(src);
  try {
    return await s.read(0, s.size);
  } finally {
    if (s !== src) await s.close?.(); // close what we opened, never the caller's source
  }
}
