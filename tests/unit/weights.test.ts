/** Checkpoint loaders: .pth (zip + safe pickle) and .safetensors over ByteSources; errors on corrupt input. */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UnsafePickleError, WeightsFormatError } from '../../src/errors';
import { openCheckpoint, type Checkpoint } from '../../src/weights/checkpoint';
import { nodeFileSource } from '../../src/weights/node-source';
import { gather, isContiguous } from '../../src/weights/pth';
import { writeSafetensors } from '../../src/weights/safetensors';
import { blobSource, bytesSource, urlSource, type ByteSource } from '../../src/weights/source';
import { crc32, openZip } from '../../src/weights/zip';
import { fixturePath } from '../helpers/fixtures';
import { buildPth, type TensorSpec } from '../helpers/pickle';
import { crc32Ref, sparseSource, writeZip, writeZipSparse } from '../helpers/zip';

const MODELS = ['rwkv6_tiny', 'rwkv7_tiny', 'rwkv6_vocab65536'];
const fileBytes = (rel: string) => new Uint8Array(readFileSync(fixturePath(rel)));

/** Open, then read every tensor (so errors at read time count too). */
/** Byte equality that stays fast for megabyte arrays (vitest's deep equality walks element by element). */
function expectSameBytes(got: Uint8Array, want: Uint8Array, what: string): void {
  expect(got.byteLength, what).toBe(want.byteLength);
  expect(Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(Buffer.from(want.buffer, want.byteOffset, want.byteLength)), `${what}: bytes differ`).toBe(true);
}

async function openAndReadAll(src: ByteSource): Promise<Checkpoint> {
  const c = await openCheckpoint(src);
  for (const t of c.tensors.values()) {
    const h = await t.read();
    expect(h.bytes.byteLength).toBe(t.byteLength);
  }
  return c;
}

/** The promise must reject with a WeightsFormatError that is not an UnsafePickleError, matching `msg`. */
async function expectFormatError(p: Promise<unknown>, msg?: RegExp): Promise<WeightsFormatError> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  expect(err, 'expected a WeightsFormatError').toBeInstanceOf(WeightsFormatError);
  expect(err).not.toBeInstanceOf(UnsafePickleError);
  if (msg) expect((err as Error).message).toMatch(msg);
  return err as WeightsFormatError;
}

function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('fixture checkpoints', () => {
  for (const m of MODELS) {
    it(`${m}: .pth and .safetensors hold byte-identical tensors`, async () => {
      const pthSrc = await nodeFileSource(fixturePath(`models/${m}/visualrwkv.pth`));
      const stSrc = await nodeFileSource(fixturePath(`models/${m}/visualrwkv.safetensors`));
      try {
        const pth = await openCheckpoint(pthSrc);
        const st = await openCheckpoint(stSrc);
        expect(pth.format).toBe('pth');
        expect(st.format).toBe('safetensors');
        expect(pth.name).toContain('visualrwkv.pth');
        expect([...pth.tensors.keys()].sort()).toEqual([...st.tensors.keys()].sort());
        expect([...pth.tensors.keys()]).toEqual([...st.tensors.keys()]); // same order too, per the MANIFEST
        for (const [name, a] of pth.tensors) {
          const b = st.tensors.get(name)!;
          expect([a.dtype, a.shape, a.byteLength], name).toEqual([b.dtype, b.shape, b.byteLength]);
          const [ta, tb] = [await a.read(), await b.read()];
          expect(ta.dtype).toBe('BF16');
          expect(ta.shape).toEqual(a.shape);
          expectSameBytes(ta.bytes, tb.bytes, `${m}: ${name}`);
        }
      } finally {
        await pthSrc.close();
        await stSrc.close();
      }
    });
  }

  it('blobSource and bytesSource read the same bytes as nodeFileSource', async () => {
    const rel = 'models/rwkv7_tiny/visualrwkv.pth';
    const bytes = fileBytes(rel);
    const node = await nodeFileSource(fixturePath(rel));
    const blob = blobSource(new Blob([bytes]), 'x.pth');
    const mem = bytesSource(bytes, 'x.pth');
    try {
      for (const [o, n] of [[0, 100], [12345, 7], [bytes.length - 50, 50], [0, bytes.length], [999, 0]] as const) {
        const want = await node.read(o, n);
        expectSameBytes(await blob.read(o, n), want, `blob ${o}+${n}`);
        expectSameBytes(await mem.read(o, n), want, `bytes ${o}+${n}`);
      }
      const a = await openCheckpoint(blob);
      const emb = await a.tensors.get('rwkv.emb.weight')!.read();
      const b = await (await openCheckpoint(node)).tensors.get('rwkv.emb.weight')!.read();
      expectSameBytes(emb.bytes, b.bytes, 'emb via blob');
      for (const s of [node, blob, mem]) await expectFormatError(s.read(bytes.length - 10, 11), /truncated/);
    } finally {
      await node.close();
    }
  });

  it('format is detected from the bytes, not the name', async () => {
    const st = await openCheckpoint(bytesSource(fileBytes('models/rwkv6_tiny/visualrwkv.safetensors'), 'model.pth'));
    expect(st.format).toBe('safetensors');
    const pth = await openCheckpoint(bytesSource(fileBytes('models/rwkv6_tiny/visualrwkv.pth'), 'model.safetensors'));
    expect(pth.format).toBe('pth');
  });

  it('a small .pth tensor read is one range request (local header fetched together with the data)', async () => {
    const bytes = fileBytes('models/rwkv6_tiny/visualrwkv.pth');
    let reads = 0;
    const inner = bytesSource(bytes, 'count.pth');
    const src: ByteSource = { name: inner.name, size: inner.size, read: (o, n) => (reads++, inner.read(o, n)) };
    const c = await openCheckpoint(src);
    const opened = reads;
    expect(opened).toBeLessThanOrEqual(5); // head, tail, central directory, data.pkl (+ zip64 EOCD)
    await c.tensors.get('rwkv.head.weight')!.read(); // 256 KiB: header + data in one request
    expect(reads - opened).toBe(1);
    await c.tensors.get('rwkv.head.weight')!.read(); // header cached
    expect(reads - opened).toBe(2);
  });
});

describe('strided views and storage offsets', () => {
  // storage: F32 0..29
  const storage = new Float32Array(Array.from({ length: 30 }, (_, i) => i));
  const sBytes = new Uint8Array(storage.buffer);
  const base = { storage: '0', dtype: 'F32' as const, storageNumel: 30 };
  const views: [string, Omit<TensorSpec, keyof typeof base>, number[]][] = [
    ['contiguous', { offset: 0, shape: [5, 6], stride: [6, 1] }, Array.from({ length: 30 }, (_, i) => i)],
    ['offset view', { offset: 7, shape: [2, 3], stride: [3, 1] }, [7, 8, 9, 10, 11, 12]],
    ['transposed', { offset: 0, shape: [3, 2], stride: [1, 3] }, [0, 3, 1, 4, 2, 5]],
    ['transposed + offset', { offset: 10, shape: [4, 3], stride: [1, 4] }, [10, 14, 18, 11, 15, 19, 12, 16, 20, 13, 17, 21]],
    ['row slice of a wider matrix', { offset: 1, shape: [3, 2], stride: [6, 1] }, [1, 2, 7, 8, 13, 14]],
    ['step 2', { offset: 3, shape: [4], stride: [2] }, [3, 5, 7, 9]],
    ['broadcast (stride 0)', { offset: 4, shape: [2, 3], stride: [0, 1] }, [4, 5, 6, 4, 5, 6]],
    ['3-D permuted (2,3,4) → (4,2,3)', { offset: 0, shape: [4, 2, 3], stride: [1, 12, 4] }, (() => {
      const out: number[] = [];
      for (let k = 0; k < 4; k++) for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) out.push(i * 12 + j * 4 + k);
      return out;
    })()],
    ['size-1 dim with odd stride', { offset: 2, shape: [1, 3], stride: [99, 1] }, [2, 3, 4]],
    ['scalar', { offset: 29, shape: [], stride: [] }, [29]],
    ['empty', { offset: 0, shape: [0, 4], stride: [4, 1] }, []],
  ];
  const entries = views.map(([name, v]) => [name, { ...base, ...v }] as [string, TensorSpec]);

  for (const zip64 of ['auto', 'full'] as const) {
    it(`read() gathers C-order bytes (zip64 ${zip64})`, async () => {
      const c = await openCheckpoint(bytesSource(buildPth(entries, { '0': sBytes }, { zip64 }), 'views.pth'));
      for (const [name, v, want] of views) {
        const info = c.tensors.get(name)!;
        expect(info.shape).toEqual(v.shape);
        expect(info.byteLength).toBe(want.length * 4);
        const t = await info.read();
        expect([...new Float32Array(t.bytes.slice().buffer)], name).toEqual(want);
      }
    });
  }

  it('isContiguous / gather on bf16 items', () => {
    expect(isContiguous([2, 3], [3, 1])).toBe(true);
    expect(isContiguous([2, 1, 3], [3, 7, 1])).toBe(true);
    expect(isContiguous([2, 3], [1, 2])).toBe(false);
    const src = new Uint8Array([0, 1, 2, 3, 4, 5, 6, 7]); // 4 bf16 items
    expect([...gather(src, [2, 2], [1, 2], 2)]).toEqual([0, 1, 4, 5, 2, 3, 6, 7]);
  });

  it('a view past the end of its storage is refused at open, naming the key', async () => {
    const bad: [string, TensorSpec][] = [['w', { ...base, offset: 25, shape: [2, 3], stride: [3, 1] }]];
    await expectFormatError(openCheckpoint(bytesSource(buildPth(bad, { '0': sBytes }), 'v.pth')), /'w'.*element 30.*30 elements/);
    const t: [string, TensorSpec][] = [['tt', { ...base, offset: 0, shape: [7, 5], stride: [1, 7] }]];
    await expectFormatError(openCheckpoint(bytesSource(buildPth(t, { '0': sBytes }), 'v.pth')), /'tt'/);
  });

  it('a broadcast view too large to allocate is a WeightsFormatError, not a RangeError', async () => {
    const e: [string, TensorSpec][] = [['huge', { ...base, offset: 0, shape: [2 ** 20, 2 ** 20], stride: [0, 0] }]];
    const c = await openCheckpoint(bytesSource(buildPth(e, { '0': sBytes }), 'b.pth'));
    expect(c.tensors.get('huge')!.byteLength).toBe(2 ** 42);
    await expectFormatError(c.tensors.get('huge')!.read(), /'huge'.*too large to read in one piece/);
  });

  it('a storage member smaller than its numel, or missing, is refused naming the key', async () => {
    const e: [string, TensorSpec][] = [['w', { ...base, offset: 0, shape: [30], stride: [1] }]];
    await expectFormatError(openCheckpoint(bytesSource(buildPth(e, { '0': sBytes.subarray(0, 100) }), 'v.pth')), /storage 'archive\/data\/0' of tensor 'w' has 100 bytes, needs 120/);
    await expectFormatError(openCheckpoint(bytesSource(buildPth(e, { '1': sBytes }), 'v.pth')), /tensor 'w' needs storage member 'archive\/data\/0', which is missing/);
  });

  it('tensors beyond 4 GB in a sparse zip64 archive (offsets above 2^32)', async () => {
    const GAP = 5 * 2 ** 30;
    const pth = buildPth(entries, { '0': sBytes }, {});
    // Rebuild the same members with a 5 GiB hole before the storage: zip offsets need zip64.
    const zip = await openZip(bytesSource(pth, 'p'));
    const members = await Promise.all(
      [...zip.entries.keys()].map(async (name) => ({ name, data: await zip.readMember(name), gapBefore: name.endsWith('data/0') ? GAP : 0 })),
    );
    const sparse = writeZipSparse(members, { zip64: 'auto' });
    expect(sparse.size).toBeGreaterThan(GAP);
    const src = sparseSource(sparse, 'huge.pth');
    const c = await openCheckpoint(src);
    for (const [name, , want] of views) {
      const t = await c.tensors.get(name)!.read();
      expect([...new Float32Array(t.bytes.slice().buffer)], name).toEqual(want);
    }
    const range = await (await openZip(src)).dataRange('archive/data/0');
    expect(range.offset).toBeGreaterThan(2 ** 32);
  });
});

describe('zip structure', () => {
  it('crc32 matches the standard check value and the independent test implementation', () => {
    const b = new TextEncoder().encode('123456789');
    expect(crc32(b)).toBe(0xcbf43926);
    const r = fileBytes('models/rwkv6_tiny/config.json');
    expect(crc32(r)).toBe(crc32Ref(r));
  });

  it('the top folder name varies (archive/, file stem, none)', async () => {
    const e: [string, TensorSpec][] = [['x', { storage: '0', dtype: 'BF16', storageNumel: 2, offset: 0, shape: [2], stride: [1] }]];
    for (const top of ['archive', 'VisualRWKV-v060-1B6-v1.0-20240612', 'a b']) {
      const c = await openAndReadAll(bytesSource(buildPth(e, { '0': new Uint8Array([1, 2, 3, 4]) }, { top }), 'f.pth'));
      expect([...(await c.tensors.get('x')!.read()).bytes]).toEqual([1, 2, 3, 4]);
    }
    const two = writeZip([{ name: 'a/data.pkl', data: new Uint8Array([0x80, 2, 0x7d, 0x2e]) }, { name: 'b/data.pkl', data: new Uint8Array([0x80, 2, 0x7d, 0x2e]) }]);
    await expectFormatError(openCheckpoint(bytesSource(two, 'two.pth')), /several data\.pkl/);
    const none = writeZip([{ name: 'model/weights.bin', data: new Uint8Array(4) }]);
    await expectFormatError(openCheckpoint(bytesSource(none, 'none.zip')), /no '<folder>\/data\.pkl'/);
  });

  it('refuses compressed and encrypted members, and big-endian storages', async () => {
    const e: [string, TensorSpec][] = [['x', { storage: '0', dtype: 'BF16', storageNumel: 2, offset: 0, shape: [2], stride: [1] }]];
    const pth = buildPth(e, { '0': new Uint8Array(4) });
    const zip = await openZip(bytesSource(pth, 'p'));
    const members = await Promise.all([...zip.entries.keys()].map(async (name) => ({ name, data: await zip.readMember(name) })));
    const deflated = writeZip(members.map((m) => ({ ...m, method: m.name.endsWith('data/0') ? 8 : 0 })));
    await expectFormatError(openAndReadAll(bytesSource(deflated, 'deflated.pth')), /'archive\/data\/0' is compressed \(method 8\)/);
    const bigEndian = buildPth(e, { '0': new Uint8Array(4) }, { extra: [{ name: 'archive/byteorder', data: new TextEncoder().encode('big') }] });
    await expectFormatError(openCheckpoint(bytesSource(bigEndian, 'be.pth')), /big-endian/);
    const little = buildPth(e, { '0': new Uint8Array(4) }, { extra: [{ name: 'archive/byteorder', data: new TextEncoder().encode('little') }] });
    expect((await openCheckpoint(bytesSource(little, 'le.pth'))).tensors.size).toBe(1);
  });

  it('an archive comment and the plain (non-zip64) end record are accepted', async () => {
    const e: [string, TensorSpec][] = [['x', { storage: '0', dtype: 'F16', storageNumel: 1, offset: 0, shape: [1], stride: [1] }]];
    const c = await openAndReadAll(bytesSource(buildPth(e, { '0': new Uint8Array(2) }, { zip64: 'auto', comment: 'PK\x05\x06 hi' }), 'c.pth'));
    expect(c.tensors.get('x')!.dtype).toBe('F16');
  });
});

describe('corrupt and foreign files → WeightsFormatError', () => {
  const pth = fileBytes('models/rwkv6_tiny/visualrwkv.pth');
  const st = fileBytes('models/rwkv6_tiny/visualrwkv.safetensors');

  it('truncated .pth and .safetensors (cut at several points)', async () => {
    for (const [name, bytes] of [['t.pth', pth], ['t.safetensors', st]] as const) {
      for (const cut of [0, 3, 7, 8, 9, 30, 100, 5000, bytes.length >> 1, bytes.length - 100, bytes.length - 22, bytes.length - 1]) {
        const err = await expectFormatError(openAndReadAll(bytesSource(bytes.subarray(0, cut), name)));
        expect(err.message).toContain(name);
      }
    }
  });

  it('flipped bytes in the zip end records, central directory and local headers', async () => {
    const dv = new DataView(pth.buffer, pth.byteOffset, pth.byteLength);
    const find = (sig: number, from = pth.length - 4, step = -1) => {
      for (let p = from; p >= 0 && p < pth.length; p += step) if (dv.getUint32(p, true) === sig) return p;
      throw new Error('sig not found');
    };
    const eocd = find(0x06054b50);
    const z64 = find(0x06064b50);
    const cd = Number(dv.getBigUint64(z64 + 48, true));
    const cdEntry1 = find(0x02014b50, cd + 4, 1); // second central entry: the first storage
    const lho1 = dv.getUint32(cdEntry1 + 42, true);
    const cases: [string, number, number, RegExp][] = [
      ['EOCD signature', eocd, 0x00, /end-of-central-directory/],
      ['EOCD comment length', eocd + 20, 0x05, /end-of-central-directory/],
      ['zip64 EOCD signature', z64, 0x00, /zip64 end-of-central-directory/],
      ['zip64 locator offset', eocd - 20 + 8, 0xff, /zip64/],
      ['central directory offset', z64 + 48, 0x07, /central directory|corrupt/],
      ['central directory size', z64 + 41, 0x7f, /central directory/],
      ['first central entry signature', cd, 0x00, /central directory entry #0/],
      ['central entry method', cdEntry1 + 10, 0x08, /compressed/],
      ['central entry name', cdEntry1 + 46 + 11, 0x7a, /missing/],
      ['central entry local header offset', cdEntry1 + 42 + 3, 0x7f, /local header offset|central directory/],
      ['central entry size', cdEntry1 + 24 + 3, 0x7f, /compressed size 262144 ≠ size|runs past the next header/],
      ['local header signature of a storage', lho1, 0x00, /no zip local header .* at offset/],
      ['local header extra length of a storage', lho1 + 29, 0x7f, /runs past the next header|local header/],
      ['data.pkl contents (CRC)', 200, 0x00, /CRC mismatch/],
    ];
    for (const [what, at, value, msg] of cases) {
      const b = pth.slice();
      b[at] = b[at] === value ? value ^ 0xff : value;
      const err = await expectFormatError(openAndReadAll(bytesSource(b, 'flip.pth')), msg);
      expect(err.message, what).toContain('flip.pth');
    }
  });

  it('random corruption of the zip directory gives WeightsFormatError or a file that still reads', async () => {
    const dv = new DataView(pth.buffer, pth.byteOffset, pth.byteLength);
    let z64 = pth.length - 4;
    while (dv.getUint32(z64, true) !== 0x06064b50) z64--;
    const cd = Number(dv.getBigUint64(z64 + 48, true));
    const rand = rng(99);
    let failed = 0;
    for (let trial = 0; trial < 150; trial++) {
      const b = pth.slice();
      // corrupt either the directory/end records or a local header region
      const region = rand() < 0.7 ? [cd, pth.length] : [0, 30 + 40];
      for (let f = 0; f < 3; f++) b[region[0]! + Math.floor(rand() * (region[1]! - region[0]!))] = Math.floor(rand() * 256);
      try {
        await openAndReadAll(bytesSource(b, 'fuzz.pth'));
      } catch (e) {
        if (!(e instanceof WeightsFormatError)) throw new Error(`trial ${trial}: ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
        failed++;
      }
    }
    expect(failed).toBeGreaterThan(30);
  });

  it('safetensors with offsets past the end, bad lengths or bad JSON', async () => {
    const data = new Uint8Array(8);
    const mk = (header: object, extra = 0) => {
      let json = JSON.stringify(header);
      while (json.length % 8) json += ' ';
      const jb = new TextEncoder().encode(json);
      const out = new Uint8Array(8 + jb.length + data.length + extra);
      new DataView(out.buffer).setBigUint64(0, BigInt(jb.length), true);
      out.set(jb, 8);
      return out;
    };
    await expectFormatError(openCheckpoint(bytesSource(mk({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }), 'past.safetensors')), /'a' ends at byte .* past the end/);
    await expectFormatError(openCheckpoint(bytesSource(mk({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 8] } }), 'len.safetensors')), /'a' F32\[4\] needs 16 bytes/);
    await expectFormatError(openCheckpoint(bytesSource(mk({ a: { dtype: 'Q4', shape: [4], data_offsets: [0, 8] } }), 'dt.safetensors')), /unknown dtype/);
    const huge = mk({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } });
    new DataView(huge.buffer).setBigUint64(0, 1n << 40n, true);
    huge[8] = 0x7b;
    await expectFormatError(openCheckpoint(bytesSource(huge, 'hdr.safetensors')), /not a PyTorch .pth \(zip\) nor a \.safetensors/);
    const badJson = mk({ a: 1 });
    badJson[10] = 0xff;
    await expectFormatError(openCheckpoint(bytesSource(badJson, 'json.safetensors')), /not valid JSON/);
  });

  it('non-zip / non-safetensors files, and the legacy torch format', async () => {
    await expectFormatError(openCheckpoint(bytesSource(new TextEncoder().encode('hello, this is not a checkpoint at all'), 'x.txt')), /x\.txt: not a PyTorch \.pth \(zip\) nor a \.safetensors/);
    await expectFormatError(openCheckpoint(bytesSource(fileBytes('vision/image_0.png'), 'image_0.png')), /image_0\.png: not a PyTorch/);
    await expectFormatError(openCheckpoint(bytesSource(fileBytes('vision/tiny_clip_vit_shared.onnx'), 'm.onnx')), /not a PyTorch/);
    const legacy = new Uint8Array([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e, 0x80, 0x02]);
    await expectFormatError(openCheckpoint(bytesSource(legacy, 'old.pth')), /old\.pth: this is the legacy \(pre-PyTorch-1\.6, non-zip\) torch\.save format/);
    await expectFormatError(openCheckpoint(bytesSource(new Uint8Array(5), 'tiny.bin')), /too short/);
  });

  it('writeSafetensors output round-trips through openCheckpoint', async () => {
    const f = new Float32Array([1, 2, 3, 4, 5, 6]);
    const c = await openCheckpoint(bytesSource(writeSafetensors({ m: { dtype: 'F32', shape: [2, 3], data: f } }), 'rt.safetensors'));
    expect([...new Float32Array((await c.tensors.get('m')!.read()).bytes.slice().buffer)]).toEqual([...f]);
  });
});

describe('urlSource (HTTP Range)', () => {
  const rel = 'models/rwkv7_tiny/visualrwkv.pth';
  const bytes = fileBytes(rel);
  let server: Server;
  let base = '';
  const requests: string[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      const mode = req.url!.split('/')[1]!; // /range/x, /norange/x, /nocr/x, /404/x
      requests.push(`${req.method} ${req.url} ${req.headers.range ?? ''}`);
      if (mode === '404') return res.writeHead(404).end();
      if (req.method === 'HEAD') return res.writeHead(200, { 'Content-Length': bytes.length }).end();
      const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
      if (mode === 'norange' || !m) return res.writeHead(200, { 'Content-Length': bytes.length }).end(Buffer.from(bytes));
      const a = Number(m[1]);
      const b = Math.min(Number(m[2]), bytes.length - 1);
      const headers: Record<string, string | number> = { 'Content-Length': b - a + 1 };
      if (mode !== 'nocr') headers['Content-Range'] = `bytes ${a}-${b}/${bytes.length}`;
      res.writeHead(206, headers).end(Buffer.from(bytes.subarray(a, b + 1)));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
  });

  it('reads the same bytes as nodeFileSource and loads the checkpoint', async () => {
    const node = await nodeFileSource(fixturePath(rel));
    try {
      const url = await urlSource(`${base}/range/visualrwkv.pth`);
      expect(url.size).toBe(node.size);
      for (const [o, n] of [[0, 64], [1000, 4096], [bytes.length - 22, 22], [777, 1]] as const) {
        expectSameBytes(await url.read(o, n), await node.read(o, n), `url ${o}+${n}`);
      }
      const a = await openCheckpoint(url);
      const b = await openCheckpoint(node);
      for (const k of ['rwkv.emb.weight', 'rwkv.blocks.3.att.r_k', 'proj.ln_v.bias']) {
        expectSameBytes((await a.tensors.get(k)!.read()).bytes, (await b.tensors.get(k)!.read()).bytes, k);
      }
      await expectFormatError(url.read(bytes.length - 1, 2), /truncated/);
    } finally {
      await node.close();
    }
  });

  it('falls back to HEAD when Content-Range is not readable', async () => {
    const url = await urlSource(`${base}/nocr/visualrwkv.pth`);
    expect(url.size).toBe(bytes.length);
    expect(await url.read(5, 5)).toEqual(bytes.slice(5, 10));
    expect(requests.some((r) => r.startsWith('HEAD /nocr/'))).toBe(true);
  });

  it('a server that ignores Range, and HTTP errors, give a clear WeightsFormatError', async () => {
    await expectFormatError(urlSource(`${base}/norange/visualrwkv.pth`), /ignored the HTTP Range header \(status 200/);
    await expectFormatError(urlSource(`${base}/404/visualrwkv.pth`), /HTTP 404/);
    await expectFormatError(urlSource('http://127.0.0.1:1/nothing.pth'), /cannot fetch/);
    // Range honoured for the probe but not afterwards (e.g. a cache in between)
    let n = 0;
    const flaky: typeof fetch = async (input, init) => {
      const r = await fetch(input, init);
      return n++ === 0 ? r : new Response(Buffer.from(bytes), { status: 200 });
    };
    const src = await urlSource(`${base}/range/visualrwkv.pth`, { fetch: flaky, name: 'flaky.pth' });
    await expectFormatError(src.read(0, 10), /flaky\.pth: the server ignored the HTTP Range header/);
  });
});
