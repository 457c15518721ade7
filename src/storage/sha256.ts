/**
 * Incremental SHA-256 (FIPS 180-4) for verifying multi-gigabyte downloads while they stream. WebCrypto only digests
 * a whole buffer at once, which does not fit a 16 GB checkpoint and cannot continue after a reload; this hasher
 * takes the bytes in pieces of any size and its state (eight words, < 64 buffered bytes, the length) can be saved
 * next to a partial file and restored to continue the same digest later.
 *
 * @example
 * const h = new Sha256();
 * for await (const chunk of stream) h.update(chunk);
 * const saved = h.saveState();              // structured-clone/JSON friendly
 * const again = Sha256.fromState(saved);    // …later, after a reload
 * again.update(rest);
 * console.log(again.hex());
 */

/** The saved state of an unfinished hash: restore it with `Sha256.fromState`. */
export interface Sha256State {
  /** The eight chaining words H0..H7 (unsigned 32-bit). */
  h: number[];
  /** The bytes after the last full 64-byte block (0..63 of them). */
  tail: number[];
  /** Bytes hashed so far. */
  length: number;
}

const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01,
  0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
  0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
  0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08,
  0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
  0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

const H0 = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

/** SHA-256 over bytes given in pieces. `update` any number of times, then `digest`/`hex` (which do not end it). */
export class Sha256 {
  private readonly h = new Int32Array(H0);
  private readonly w = new Int32Array(64);
  private readonly block = new Uint8Array(64);
  private blockLen = 0;
  private total = 0;

  /** Bytes hashed so far. */
  get length(): number {
    return this.total;
  }

  /** Hash more bytes. */
  update(data: Uint8Array): this {
    let pos = 0;
    const n = data.length;
    this.total += n;
    if (this.blockLen > 0) {
      const take = Math.min(64 - this.blockLen, n);
      this.block.set(data.subarray(0, take), this.blockLen);
      this.blockLen += take;
      pos = take;
      if (this.blockLen < 64) return this;
      this.compress(this.block, 0);
      this.blockLen = 0;
    }
    for (; pos + 64 <= n; pos += 64) this.compress(data, pos);
    if (pos < n) {
      this.block.set(data.subarray(pos), 0);
      this.blockLen = n - pos;
    }
    return this;
  }

  /** The digest of everything so far (32 bytes). The hasher is unchanged and can keep going. */
  digest(): Uint8Array {
    const c = Sha256.fromState(this.saveState());
    const bits = this.total * 8;
    const pad = new Uint8Array((this.blockLen < 56 ? 64 : 128) - this.blockLen);
    pad[0] = 0x80;
    // 64-bit big-endian bit length; lengths are < 2^53 bytes, so split through division, not shifts.
    const hi = Math.floor(bits / 0x100000000);
    const lo = bits >>> 0;
    const e = pad.length - 8;
    pad[e] = hi >>> 24;
    pad[e + 1] = hi >>> 16;
    pad[e + 2] = hi >>> 8;
    pad[e + 3] = hi;
    pad[e + 4] = lo >>> 24;
    pad[e + 5] = lo >>> 16;
    pad[e + 6] = lo >>> 8;
    pad[e + 7] = lo;
    c.update(pad);
    const out = new Uint8Array(32);
    for (let i = 0; i < 8; i++) {
      const v = c.h[i]!;
      out[4 * i] = v >>> 24;
      out[4 * i + 1] = v >>> 16;
      out[4 * i + 2] = v >>> 8;
      out[4 * i + 3] = v;
    }
    return out;
  }

  /** The digest as 64 lowercase hex digits. */
  hex(): string {
    return toHex(this.digest());
  }

  /** A plain copy of the state (for IndexedDB or JSON). */
  saveState(): Sha256State {
    return { h: Array.from(this.h, (v) => v >>> 0), tail: Array.from(this.block.subarray(0, this.blockLen)), length: this.total };
  }

  /** A hasher that continues from a saved state. Throws on a malformed state. */
  static fromState(s: Sha256State): Sha256 {
    const ok =
      s && Array.isArray(s.h) && s.h.length === 8 && s.h.every((v) => Number.isInteger(v) && v >= 0 && v < 2 ** 32) &&
      Array.isArray(s.tail) && s.tail.length < 64 && s.tail.every((v) => Number.isInteger(v) && v >= 0 && v < 256) &&
      Number.isSafeInteger(s.length) && s.length >= 0 && s.length % 64 === s.tail.length;
    if (!ok) throw new TypeError('malformed SHA-256 state');
    const x = new Sha256();
    x.h.set(s.h.map((v) => v | 0));
    x.block.set(s.tail);
    x.blockLen = s.tail.length;
    x.total = s.length;
    return x;
  }

  /** One 64-byte block at `p` of `d`. */
  private compress(d: Uint8Array, p: number): void {
    const w = this.w;
    const h = this.h;
    for (let i = 0; i < 16; i++, p += 4) w[i] = (d[p]! << 24) | (d[p + 1]! << 16) | (d[p + 2]! << 8) | d[p + 3]!;
    for (let i = 16; i < 64; i++) {
      const x = w[i - 15]!;
      const y = w[i - 2]!;
      const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w[i] = (w[i - 16]! + s0 + w[i - 7]! + s1) | 0;
    }
    let a = h[0]!, b = h[1]!, c = h[2]!, dd = h[3]!, e = h[4]!, f = h[5]!, g = h[6]!, hh = h[7]!;
    for (let i = 0; i < 64; i++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const t1 = (hh + S1 + ((e & f) ^ (~e & g)) + K[i]! + w[i]!) | 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      hh = g;
      g = f;
      f = e;
      e = (dd + t1) | 0;
      dd = c;
      c = b;
      b = a;
      a = (t1 + t2) | 0;
    }
    h[0] = (h[0]! + a) | 0;
    h[1] = (h[1]! + b) | 0;
    h[2] = (h[2]! + c) | 0;
    h[3] = (h[3]! + dd) | 0;
    h[4] = (h[4]! + e) | 0;
    h[5] = (h[5]! + f) | 0;
    h[6] = (h[6]! + g) | 0;
    h[7] = (h[7]! + hh) | 0;
  }
}

/** Lowercase hex of bytes. */
export function toHex(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

/** SHA-256 of bytes in one call, as hex. */
export function sha256Hex(bytes: Uint8Array): string {
  return new Sha256().update(bytes).hex();
}

/** True for a 64-digit hex SHA-256 (either case). */
export function isSha256Hex(s: unknown): s is string {
  return typeof s === 'string' && /^[0-9a-fA-F]{64}$/.test(s);
}
