/** inflate.ts (png.ts's fallback inflater) against node:zlib: every block type, long matches, junk, truncation. */
import { constants, deflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { inflateZlib } from '../../src/vision/inflate';

function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Inputs that exercise literals, short and long matches (length 258, distance up to 32768) and stored blocks. */
function corpus(): [string, Uint8Array][] {
  const r = rng(42);
  const random = Uint8Array.from({ length: 70_000 }, () => Math.floor(r() * 256));
  const text = new TextEncoder().encode('the quick brown fox jumps over the lazy dog; '.repeat(3000));
  const runs = new Uint8Array(100_000);
  for (let i = 0; i < runs.length; i++) runs[i] = i % 40_000 < 20_000 ? 7 : (i >> 5) & 255;
  const farCopy = new Uint8Array(80_000);
  farCopy.set(random.subarray(0, 33_000));
  farCopy.set(random.subarray(0, 33_000), 32_768 + 300); // matches at distance 33 068 > 32 768 and within it
  const mixed = Uint8Array.from({ length: 50_000 }, (_, i) => ((i * i) >> 7) & (i & 1024 ? 255 : 3));
  return [['empty', new Uint8Array(0)], ['one byte', Uint8Array.of(9)], ['random', random], ['text', text], ['runs', runs], ['far copies', farCopy], ['mixed', mixed]];
}

describe('inflateZlib', () => {
  for (const [name, data] of corpus()) {
    it(`${name}: equals the input for every zlib level and strategy`, () => {
      const variants: [string, object][] = [
        ['level 0 (stored)', { level: 0 }],
        ['level 1', { level: 1 }],
        ['level 6', { level: 6 }],
        ['level 9', { level: 9 }],
        ['fixed Huffman', { strategy: constants.Z_FIXED }],
        ['Huffman only', { strategy: constants.Z_HUFFMAN_ONLY }],
        ['RLE', { strategy: constants.Z_RLE }],
        ['small window', { windowBits: 9, memLevel: 1 }],
      ];
      for (const [label, opts] of variants) {
        const z = new Uint8Array(deflateSync(data, opts));
        const r = inflateZlib(z, data.length);
        expect(r.error, label).toBeUndefined();
        expect(r.filled, label).toBe(data.length);
        expect(Buffer.from(r.data).equals(Buffer.from(data)), label).toBe(true);
      }
    });
  }

  it('stops at the expected size and ignores what follows (Pillow semantics)', () => {
    const data = corpus()[3]![1];
    const z = new Uint8Array(deflateSync(data));
    const withJunk = new Uint8Array(z.length + 17).fill(0x55);
    withJunk.set(z);
    expect(inflateZlib(withJunk, data.length).error).toBeUndefined();
    const part = inflateZlib(z, 1000);
    expect(part.error).toBeUndefined();
    expect(Array.from(part.data)).toEqual(Array.from(data.subarray(0, 1000)));
    const broken = z.slice();
    broken[broken.length - 1] ^= 0xff; // Adler-32 is not checked
    expect(inflateZlib(broken, data.length).error).toBeUndefined();
  });

  it('reports truncated and corrupt streams without throwing', () => {
    const data = corpus()[2]![1];
    const z = new Uint8Array(deflateSync(data, { level: 6 }));
    const cut = inflateZlib(z.subarray(0, z.length >> 1), data.length);
    expect(cut.error).toMatch(/ends early/);
    expect(cut.filled).toBeGreaterThan(0);
    expect(cut.filled).toBeLessThan(data.length);
    expect(Array.from(cut.data.subarray(0, cut.filled))).toEqual(Array.from(data.subarray(0, cut.filled)));
    expect(inflateZlib(Uint8Array.of(0x78), 10).error).toMatch(/no zlib header/);
    expect(inflateZlib(Uint8Array.of(0x79, 0x9c, 0, 0), 10).error).toMatch(/bad zlib header/);
    expect(inflateZlib(Uint8Array.of(0x78, 0x9c, 0b111), 10).error).toMatch(/invalid block type/);
    expect(inflateZlib(Uint8Array.of(0x78, 0x9c, 0x01, 5, 0, 5, 0), 10).error).toMatch(/stored block length mismatch/);
    // Fixed block whose first symbol is a match: nothing to copy from.
    expect(inflateZlib(Uint8Array.of(0x78, 0x9c, 0x03, 0x02), 10).error).toMatch(/distance too far back/);
    expect(inflateZlib(new Uint8Array(deflateSync(new Uint8Array(5))), 10).error).toMatch(/ends before the image data is complete/);
  });
});
