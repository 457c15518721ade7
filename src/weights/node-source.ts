/** Node-only ByteSource over a local file (fs/promises FileHandle; reads at explicit positions). */
import { open, type FileHandle } from 'node:fs/promises';
import { WeightsFormatError } from '../errors';
import { checkRange, type ByteSource } from './source';

/**
 * Open a local file as a ByteSource. Call `close()` when done (the handle is otherwise closed at garbage
 * collection, with a Node warning).
 *
 * @example
 * const src = await nodeFileSource('VisualRWKV-v060-1B6-v1.0-20240612.pth');
 * try { const ckpt = await openCheckpoint(src); ... } finally { await src.close(); }
 */
export async function nodeFileSource(path: string): Promise<ByteSource & { close(): Promise<void> }> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(path, 'r');
    const st = await fh.stat();
    if (!st.isFile()) throw new WeightsFormatError(`${path}: not a regular file`);
    const handle = fh;
    let closed = false;
    const src = {
      name: path,
      size: st.size,
      async read(offset: number, length: number): Promise<Uint8Array> {
        checkRange(src, offset, length);
        if (closed) throw new WeightsFormatError(`${path}: read after close()`);
        const buf = new Uint8Array(length);
        let got = 0;
        while (got < length) {
          const { bytesRead } = await handle.read(buf, got, length - got, offset + got);
          if (bytesRead === 0) {
            throw new WeightsFormatError(`${path}: file ended at byte ${offset + got} while reading ${length} bytes at ${offset} (did it shrink?)`);
          }
          got += bytesRead;
        }
        return buf;
      },
      async close(): Promise<void> {
        if (!closed) {
          closed = true;
          await handle.close();
        }
      },
    };
    return src;
  } catch (e) {
    await fh?.close().catch(() => undefined);
    if (e instanceof WeightsFormatError) throw e;
    throw new WeightsFormatError(`${path}: cannot open: ${(e as Error)?.message ?? e}`, { cause: e });
  }
}
