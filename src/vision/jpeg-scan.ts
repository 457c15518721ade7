/**
 * The entropy-coded half of the JPEG decoder (jpeg.ts): Huffman tables, the bit reader (jdhuff.c fill_bit_buffer
 * semantics: FF00 stuffing, zero-fill at markers, truncation at end of file) and scan decoding into coefficient
 * blocks — baseline (jdhuff.c decode_mcu) and progressive DC/AC first/refine (jdphuff.c), restart markers with
 * jpeg_resync_to_restart, and libjpeg's "insufficient data" rule (after a premature marker the rest of the restart
 * interval is left empty).
 */
import { ImageDecodeError } from '../errors';
import { NATURAL_ORDER } from './jpeg-pixels';

export interface Huffman {
  /** 8-bit lookahead: (length << 8) | symbol, 0 when the code is longer than 8 bits. */
  lookup: Uint16Array;
  maxcode: Int32Array; // [1..16], −1 when no code of that length; [17] sentinel
  valoffset: Int32Array;
  values: Uint8Array;
}

export interface Component {
  id: number;
  h: number;
  v: number;
  tq: number;
  /** Quantiser latched at the first scan that includes the component (natural order, as libjpeg's int16 table). */
  quant: Int16Array | null;
  /** Blocks per row / column of the MCU-padded grid. */
  bw: number;
  bh: number;
  /** Subsampled size in samples (jdinput.c downsampled_width/height). */
  w: number;
  hgt: number;
  coefs: Int16Array;
  pred: number;
  dc: Huffman | null;
  ac: Huffman | null;
}

export interface Frame {
  width: number;
  height: number;
  progressive: boolean;
  components: Component[];
  hmax: number;
  vmax: number;
  mcusX: number;
  mcusY: number;
}


export const fail = (msg: string): never => {
  throw new ImageDecodeError(`JPEG: ${msg}`);
};


export function buildHuffman(bits: Uint8Array, values: Uint8Array): Huffman {
  const maxcode = new Int32Array(18).fill(-1);
  const valoffset = new Int32Array(18);
  const lookup = new Uint16Array(256);
  let code = 0;
  let p = 0;
  for (let l = 1; l <= 16; l++) {
    const n = bits[l - 1]!;
    if (n) {
      valoffset[l] = p - code;
      for (let i = 0; i < n; i++, p++, code++) {
        if (l <= 8) {
          const base = code << (8 - l);
          lookup.fill((l << 8) | values[p]!, base, base + (1 << (8 - l)));
        }
      }
      maxcode[l] = code - 1;
    }
    if (code > 1 << l) fail('bad Huffman table');
    code <<= 1;
  }
  maxcode[17] = 0x7fffffff;
  return { lookup, maxcode, valoffset, values };
}

/** The entropy-coded segment reader (jdhuff.c fill_bit_buffer semantics). */
export class BitReader {
  buf = 0;
  cnt = 0;
  /** Zero bits appended past the data: at a marker (allowed, as libjpeg) or at the end of the file (truncated). */
  fake = 0;
  atMarker = false;
  eof = false;
  /** libjpeg's insufficient_data: a marker was hit, the rest of this restart interval is skipped. */
  insufficient = false;

  constructor(readonly data: Uint8Array, public pos: number) {}

  private fill(): void {
    const d = this.data;
    while (this.cnt <= 16) {
      let byte = 0;
      if (this.atMarker || this.eof) {
        this.fake += 8;
      } else if (this.pos >= d.length) {
        this.eof = true;
        this.fake += 8;
      } else {
        byte = d[this.pos]!;
        if (byte === 0xff) {
          let q = this.pos + 1;
          while (q < d.length && d[q] === 0xff) q++; // FF FF ... 00 is one FF data byte, as libjpeg accepts
          if (q >= d.length) {
            this.eof = true;
            this.fake += 8;
            byte = 0;
          } else if (d[q] === 0) {
            this.pos = q + 1;
          } else {
            this.atMarker = true; // pos stays on the marker's FF
            this.fake += 8;
            byte = 0;
          }
        } else {
          this.pos++;
        }
      }
      this.buf = (this.buf << 8) | byte;
      this.cnt += 8;
    }
  }

  private consumed(n: number): void {
    this.cnt -= n;
    if (this.cnt < this.fake) {
      if (this.eof) fail('the file is truncated (entropy-coded data ends early)');
      this.insufficient = true;
    }
  }

  bits(n: number): number {
    if (n === 0) return 0;
    if (this.cnt < n) this.fill();
    this.consumed(n);
    return (this.buf >> this.cnt) & ((1 << n) - 1);
  }

  bit(): number {
    return this.bits(1);
  }

  decode(t: Huffman): number {
    if (this.cnt < 16) this.fill();
    const e = t.lookup[(this.buf >> (this.cnt - 8)) & 255]!;
    if (e) {
      this.consumed(e >> 8);
      return e & 255;
    }
    let code = this.bit();
    let l = 1;
    while (code > t.maxcode[l]!) {
      code = (code << 1) | this.bit();
      if (++l > 16) return 0; // garbage: libjpeg warns and fakes a zero (jpeg_huff_decode)
    }
    return t.values[code + t.valoffset[l]!]!;
  }

  /** Drop buffered bits and position on the next marker (skipping garbage); return its code, or −1 at EOF. */
  nextMarker(): number {
    this.buf = 0;
    this.cnt = 0;
    this.fake = 0;
    this.atMarker = false;
    const d = this.data;
    let p = this.pos;
    for (;;) {
      while (p < d.length && d[p] !== 0xff) p++;
      while (p + 1 < d.length && d[p + 1] === 0xff) p++;
      if (p + 1 >= d.length) {
        this.pos = d.length;
        return -1;
      }
      if (d[p + 1] !== 0) break;
      p += 2; // stuffed FF00 in skipped data
    }
    this.pos = p;
    return d[p + 1]!;
  }
}

const extend = (v: number, s: number) => (v < 1 << (s - 1) ? v - (1 << s) + 1 : v);

export function decodeScan(
  f: Frame,
  seg: Uint8Array,
  reader: BitReader,
  qt: (Int16Array | null)[],
  dcTables: (Huffman | null)[],
  acTables: (Huffman | null)[],
  restartInterval: number,
): void {
  const ns = seg[0] ?? 0;
  if (ns < 1 || ns > 4 || seg.length < 1 + 2 * ns + 3) fail('bad scan header (SOS)');
  const comps: Component[] = [];
  for (let i = 0; i < ns; i++) {
    const c = f.components.find((x) => x.id === seg[1 + 2 * i]);
    if (!c) fail(`scan refers to an unknown component id ${seg[1 + 2 * i]}`);
    c!.dc = dcTables[seg[2 + 2 * i]! >> 4] ?? null;
    c!.ac = acTables[seg[2 + 2 * i]! & 15] ?? null;
    if (!c!.quant) {
      const q = qt[c!.tq];
      if (!q) fail(`missing quantisation table ${c!.tq}`);
      c!.quant = q!.slice();
    }
    comps.push(c!);
  }
  const ss = seg[1 + 2 * ns]!;
  const se = seg[2 + 2 * ns]!;
  const ah = seg[3 + 2 * ns]! >> 4;
  const al = seg[3 + 2 * ns]! & 15;
  const prog = f.progressive;
  if (prog ? ss > se || se > 63 || (ss === 0 && se !== 0) || (ss > 0 && ns !== 1) || al > 13 : ss !== 0 || se !== 63) {
    fail(`bad scan parameters Ss=${ss} Se=${se} Ah=${ah} Al=${al}`);
  }
  const needDc = !prog || ss === 0;
  const needAc = !prog || se > 0;
  for (const c of comps) {
    if ((needDc && ah === 0 && !c.dc) || (needAc && !c.ac)) fail('scan uses an undefined Huffman table');
    if (needDc && ah === 0 && c.dc!.values.some((v) => v > 15)) fail('bad DC Huffman table (symbol > 15)');
    c.pred = 0;
  }

  let eobrun = 0;
  const decodeBlock = (c: Component, at: number) => {
    const z = c.coefs;
    if (!prog) {
      const t = reader.decode(c.dc!);
      c.pred += t ? extend(reader.bits(t), t) : 0;
      z[at] = c.pred;
      const ac = c.ac!;
      for (let k = 1; k < 64; k++) {
        const rs = reader.decode(ac);
        const s = rs & 15;
        const r = rs >> 4;
        if (s) {
          k += r;
          z[at + NATURAL_ORDER[k]!] = extend(reader.bits(s), s);
        } else {
          if (r !== 15) break;
          k += 15;
        }
      }
    } else if (ss === 0) {
      if (ah === 0) {
        const t = reader.decode(c.dc!);
        c.pred += t ? extend(reader.bits(t), t) : 0;
        z[at] = c.pred * (1 << al);
      } else if (reader.bit()) {
        z[at] |= 1 << al;
      }
    } else if (ah === 0) {
      if (eobrun > 0) {
        eobrun--;
        return;
      }
      for (let k = ss; k <= se; k++) {
        const rs = reader.decode(c.ac!);
        const s = rs & 15;
        const r = rs >> 4;
        if (s) {
          k += r;
          z[at + NATURAL_ORDER[k]!] = extend(reader.bits(s), s) * (1 << al);
        } else if (r === 15) {
          k += 15;
        } else {
          eobrun = (1 << r) - 1;
          if (r) eobrun += reader.bits(r);
          break;
        }
      }
    } else {
      refineAc(z, at);
    }
  };

  // jdphuff.c decode_mcu_AC_refine.
  const refineAc = (z: Int16Array, at: number) => {
    const p1 = 1 << al;
    const m1 = -1 << al;
    let k = ss;
    const correct = (pos: number) => {
      if (reader.bit() && (z[pos]! & p1) === 0) z[pos] += z[pos]! >= 0 ? p1 : m1;
    };
    if (eobrun === 0) {
      for (; k <= se; k++) {
        const rs = reader.decode(comps[0]!.ac!);
        let s = rs & 15;
        let r = rs >> 4;
        if (s) {
          s = reader.bit() ? p1 : m1; // s should be 1
        } else if (r !== 15) {
          eobrun = 1 << r;
          if (r) eobrun += reader.bits(r);
          break;
        }
        do {
          const pos = at + NATURAL_ORDER[k]!;
          if (z[pos] !== 0) correct(pos);
          else if (--r < 0) break;
          k++;
        } while (k <= se);
        if (s) z[at + NATURAL_ORDER[k]!] = s;
      }
    }
    if (eobrun > 0) {
      for (; k <= se; k++) {
        const pos = at + NATURAL_ORDER[k]!;
        if (z[pos] !== 0) correct(pos);
      }
      eobrun--;
    }
  };

  let nextRst = 0;
  const restart = () => {
    // jdhuff.c process_restart + jdmarker.c read_restart_marker / jpeg_resync_to_restart.
    let m = reader.nextMarker();
    for (;;) {
      if (m === 0xd0 + nextRst) {
        reader.pos += 2;
        break;
      }
      if (m >= 0xd0 && m <= 0xd7 && (m === 0xd0 + ((nextRst - 1) & 7) || m === 0xd0 + ((nextRst - 2) & 7))) {
        reader.pos += 2; // a prior restart: skip to the next marker and decide again
        m = reader.nextMarker();
        continue;
      }
      if (m >= 0xd0 && m <= 0xd7 && !(m === 0xd0 + ((nextRst + 1) & 7) || m === 0xd0 + ((nextRst + 2) & 7))) {
        reader.pos += 2; // too far away: discard it and resume
        break;
      }
      reader.atMarker = true; // non-RST marker or one of the next two: leave it, decode an empty segment
      break;
    }
    nextRst = (nextRst + 1) & 7;
    for (const c of comps) c.pred = 0;
    eobrun = 0;
    // libjpeg keeps the out-of-data flag when left up against a marker: the next segment is then empty.
    if (!reader.atMarker) reader.insufficient = false;
  };

  reader.buf = 0;
  reader.cnt = 0;
  reader.fake = 0;
  reader.atMarker = false;
  reader.eof = false;
  reader.insufficient = false;
  let mcu = 0;
  const step = () => {
    if (restartInterval && mcu > 0 && mcu % restartInterval === 0) restart();
    mcu++;
    return !reader.insufficient; // after a premature marker libjpeg leaves the rest of the interval empty
  };

  if (ns === 1) {
    // Non-interleaved: one block per MCU over the component's own block grid.
    const c = comps[0]!;
    const bx = Math.ceil(c.w / 8);
    const by = Math.ceil(c.hgt / 8);
    for (let y = 0; y < by; y++) {
      for (let x = 0; x < bx; x++) if (step()) decodeBlock(c, (y * c.bw + x) * 64);
    }
  } else {
    for (let my = 0; my < f.mcusY; my++) {
      for (let mx = 0; mx < f.mcusX; mx++) {
        if (!step()) continue;
        for (const c of comps) {
          for (let v = 0; v < c.v; v++) {
            for (let h = 0; h < c.h; h++) decodeBlock(c, ((my * c.v + v) * c.bw + mx * c.h + h) * 64);
          }
        }
      }
    }
  }
}
