/**
 * A small zlib (RFC 1950) / DEFLATE (RFC 1951) decoder in the style of zlib's `puff.c`, used by png.ts when the
 * platform's DecompressionStream gives up. Its semantics are Pillow's (ZipDecode): inflate until the expected number
 * of bytes is produced and ignore whatever follows (trailing bytes after the zlib stream, a bad Adler-32), so a PNG
 * whose IDAT data has junk after the compressed stream — which Chromium's DecompressionStream rejects, dropping
 * output it already produced — still decodes.
 *
 * @example
 * const r = inflateZlib(idat, expectedBytes); // r.data.length === expectedBytes; r.filled < expected → r.error
 */

export interface InflateResult {
  /** `expected` bytes; only the first `filled` are valid. */
  data: Uint8Array;
  filled: number;
  /** Why decoding stopped before `expected` bytes (absent when complete). */
  error?: string;
}

/**
 * Canonical Huffman code: (count per length, symbols in code order) for puff.c's bit-by-bit decode, plus a
 * FAST_BITS-bit lookup of the next input bits (LSB first) → (length << 16) | symbol for codes up to FAST_BITS long.
 */
interface Code {
  count: Uint16Array; // [0..15]
  symbol: Uint16Array;
  fast: Int32Array;
}

const FAST_BITS = 9;

const LEN_BASE = Uint16Array.of(3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258);
const LEN_EXTRA = Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0);
const DIST_BASE = Uint16Array.of(1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577);
const DIST_EXTRA = Uint8Array.of(0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13);
const CL_ORDER = Uint8Array.of(16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15);

class InflateError extends Error {}

/** Build a canonical code from code lengths; throws on over-subscribed sets (incomplete sets are allowed, as zlib). */
function build(lengths: Uint8Array, n: number): Code {
  const count = new Uint16Array(16);
  for (let i = 0; i < n; i++) count[lengths[i]!]!++;
  let left = 1;
  for (let len = 1; len < 16; len++) {
    left = left * 2 - count[len]!;
    if (left < 0) throw new InflateError('over-subscribed Huffman code');
  }
  const offs = new Uint16Array(16);
  for (let len = 1; len < 15; len++) offs[len + 1] = offs[len]! + count[len]!;
  const symbol = new Uint16Array(n);
  for (let i = 0; i < n; i++) if (lengths[i]) symbol[offs[lengths[i]!]!++] = i;
  count[0] = 0;
  // Codes in canonical order: consecutive values per length, lengths ascending.
  const fast = new Int32Array(1 << FAST_BITS);
  let code = 0;
  let k = 0;
  for (let len = 1; len <= FAST_BITS; len++, code <<= 1) {
    for (let i = 0; i < count[len]!; i++, code++, k++) {
      let rev = 0;
      for (let b = 0; b < len; b++) rev |= ((code >> b) & 1) << (len - 1 - b);
      for (let fill = rev; fill < 1 << FAST_BITS; fill += 1 << len) fast[fill] = (len << 16) | symbol[k]!;
    }
  }
  return { count, symbol, fast };
}

let FIXED: [Code, Code] | null = null;
function fixedCodes(): [Code, Code] {
  if (!FIXED) {
    const l = new Uint8Array(288);
    l.fill(8, 0, 144).fill(9, 144, 256).fill(7, 256, 280).fill(8, 280, 288);
    FIXED = [build(l, 288), build(new Uint8Array(30).fill(5), 30)];
  }
  return FIXED;
}

/** Inflate a zlib stream into exactly `expected` bytes (see the module comment). Never throws. */
export function inflateZlib(input: Uint8Array, expected: number): InflateResult {
  const out = new Uint8Array(expected);
  let filled = 0;
  let pos = 0;
  let bitBuf = 0;
  let bitCnt = 0;
  let overrun = 0; // zero bits added past the end of the input
  const need = (n: number) => {
    while (bitCnt < n) {
      if (pos < input.length) bitBuf |= input[pos++]! << bitCnt;
      else overrun += 8;
      bitCnt += 8;
    }
  };
  const drop = (n: number) => {
    bitBuf >>>= n;
    bitCnt -= n;
    if (bitCnt < overrun) throw new InflateError('compressed data ends early');
  };
  const bits = (n: number): number => {
    need(n);
    const v = bitBuf & ((1 << n) - 1);
    drop(n);
    return v;
  };
  const decode = (c: Code): number => {
    need(FAST_BITS);
    const e = c.fast[bitBuf & ((1 << FAST_BITS) - 1)]!;
    if (e) {
      drop(e >>> 16);
      return e & 0xffff;
    }
    let code = 0;
    let first = 0;
    let index = 0;
    for (let len = 1; len < 16; len++) {
      code |= bits(1);
      const count = c.count[len]!;
      if (code - count < first) return c.symbol[index + (code - first)]!;
      index += count;
      first = (first + count) << 1;
      code <<= 1;
    }
    throw new InflateError('invalid Huffman code');
  };

  try {
    if (input.length < 2) throw new InflateError('no zlib header');
    const cmf = input[0]!;
    const flg = input[1]!;
    if ((cmf & 15) !== 8 || cmf >> 4 > 7 || ((cmf << 8) | flg) % 31 !== 0) throw new InflateError('bad zlib header');
    if (flg & 0x20) throw new InflateError('zlib preset dictionary is not allowed in PNG');
    pos = 2;
    let last = 0;
    while (!last && filled < expected) {
      last = bits(1);
      const type = bits(2);
      if (type === 0) {
        // Stored block: byte-aligned. Give back the whole bytes already buffered.
        if (overrun) throw new InflateError('compressed data ends early');
        pos -= bitCnt >> 3;
        bitBuf = 0;
        bitCnt = 0;
        if (pos + 4 > input.length) throw new InflateError('compressed data ends early');
        const len = input[pos]! | (input[pos + 1]! << 8);
        const nlen = input[pos + 2]! | (input[pos + 3]! << 8);
        if (len !== (~nlen & 0xffff)) throw new InflateError('stored block length mismatch');
        pos += 4;
        const n = Math.min(len, expected - filled, input.length - pos);
        out.set(input.subarray(pos, pos + n), filled);
        filled += n;
        pos += n;
        if (n < len && filled < expected) throw new InflateError('compressed data ends early');
        continue;
      }
      let lit: Code;
      let dist: Code;
      if (type === 1) {
        [lit, dist] = fixedCodes();
      } else if (type === 2) {
        const nlen = bits(5) + 257;
        const ndist = bits(5) + 1;
        const ncode = bits(4) + 4;
        if (nlen > 286 || ndist > 30) throw new InflateError('bad dynamic block header');
        const cl = new Uint8Array(19);
        for (let i = 0; i < ncode; i++) cl[CL_ORDER[i]!] = bits(3);
        const clCode = build(cl, 19);
        const lengths = new Uint8Array(nlen + ndist);
        for (let i = 0; i < nlen + ndist;) {
          const sym = decode(clCode);
          if (sym < 16) {
            lengths[i++] = sym;
            continue;
          }
          let rep = 0;
          let val = 0;
          if (sym === 16) {
            if (i === 0) throw new InflateError('repeat with no previous length');
            val = lengths[i - 1]!;
            rep = 3 + bits(2);
          } else if (sym === 17) {
            rep = 3 + bits(3);
          } else {
            rep = 11 + bits(7);
          }
          if (i + rep > nlen + ndist) throw new InflateError('too many code lengths');
          lengths.fill(val, i, i + rep);
          i += rep;
        }
        if (lengths[256] === 0) throw new InflateError('no end-of-block code');
        lit = build(lengths.subarray(0, nlen), nlen);
        dist = build(lengths.subarray(nlen), ndist);
      } else {
        throw new InflateError('invalid block type 3');
      }
      for (;;) {
        const sym = decode(lit);
        if (sym < 256) {
          out[filled++] = sym;
          if (filled === expected) break;
        } else if (sym === 256) {
          break;
        } else {
          const li = sym - 257;
          if (li >= 29) throw new InflateError('invalid length code');
          const len = LEN_BASE[li]! + bits(LEN_EXTRA[li]!);
          const di = decode(dist);
          if (di >= 30) throw new InflateError('invalid distance code');
          const d = DIST_BASE[di]! + bits(DIST_EXTRA[di]!);
          if (d > filled) throw new InflateError('distance too far back');
          const n = Math.min(len, expected - filled);
          for (let k = 0; k < n; k++, filled++) out[filled] = out[filled - d]!;
          if (filled === expected) break;
        }
      }
    }
    if (filled < expected) throw new InflateError('the compressed stream ends before the image data is complete');
    return { data: out, filled };
  } catch (e) {
    if (!(e instanceof InflateError)) throw e;
    return { data: out, filled, error: e.message };
  }
}
