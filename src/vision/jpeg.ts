/**
 * JPEG decoder, pure TypeScript (Node and browsers), giving the pixels Pillow gives for
 * `Image.open(f).convert('RGB')` — i.e. libjpeg-turbo's defaults: ISLOW integer IDCT, fancy upsampling, libjpeg's
 * colour-space rules (JFIF / Adobe transform / component ids), no EXIF rotation, no colour management (ICC ignored).
 * Checked bit-exact against Pillow 9.4 + libjpeg-turbo 2.1.5 on tests/data/jpeg (baseline, progressive with
 * successive approximation, restart intervals, non-interleaved scans, 4:4:4 / 4:2:2 / 4:2:0 / 4:4:0 / 4:1:1 / 3:1:1,
 * gray, RGB, CMYK).
 *
 * Supported: SOF0/SOF1 (baseline / extended sequential, Huffman, 8-bit) and SOF2 (progressive, Huffman, 8-bit) with
 * 1, 3 or 4 components. Refused with ImageDecodeError: arithmetic coding, lossless, hierarchical, 12-bit, truncated
 * data (the file ends inside a scan, as Pillow's "image file is truncated"), invalid tables and headers, images above
 * the size limits. Corrupt entropy-coded data is decoded the way libjpeg does (Pillow ignores libjpeg's warnings): an
 * invalid Huffman code reads as 0, a marker inside a scan zero-fills the current MCU and leaves the rest of that restart
 * interval empty, restart markers are resynchronised as in jpeg_resync_to_restart.
 *
 * @example
 * const { width, height, data } = decodeJpeg(bytes); // RGB8
 */
import { ImageDecodeError } from '../errors';
import { checkImageSize, DEFAULT_IMAGE_LIMITS, type ImageLimits, type RgbImage } from './image';
import { cmykToRgb, idctIslow, NATURAL_ORDER, upsampleComponent, yccToRgb } from './jpeg-pixels';

export interface JpegDecodeOptions {
  limits?: Partial<ImageLimits>;
}

/** What the header says (from the markers before the first scan). */
export interface JpegInfo {
  width: number;
  height: number;
  components: number;
  progressive: boolean;
  /** How libjpeg interprets the components (jdapimin.c default_decompress_parms). */
  colorSpace: 'gray' | 'ycbcr' | 'rgb' | 'cmyk' | 'ycck';
}

/** True if `bytes` starts like a JPEG (SOI followed by a marker). */
export function isJpeg(bytes: Uint8Array): boolean {
  return bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
}

interface Huffman {
  /** 8-bit lookahead: (length << 8) | symbol, 0 when the code is longer than 8 bits. */
  lookup: Uint16Array;
  maxcode: Int32Array; // [1..16], −1 when no code of that length; [17] sentinel
  valoffset: Int32Array;
  values: Uint8Array;
}

interface Component {
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

interface Frame {
  width: number;
  height: number;
  progressive: boolean;
  components: Component[];
  hmax: number;
  vmax: number;
  mcusX: number;
  mcusY: number;
}

const fail = (msg: string): never => {
  throw new ImageDecodeError(`JPEG: ${msg}`);
};

function buildHuffman(bits: Uint8Array, values: Uint8Array): Huffman {
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
class BitReader {
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

/** Parse markers up to the first SOF: size and colour interpretation, without decoding. */
export function readJpegInfo(bytes: Uint8Array): JpegInfo {
  const info = parse(bytes, null);
  if (!info) fail('no frame header (SOF) found');
  return info!;
}

/** Decode a JPEG to RGB8 (Pillow `convert('RGB')` pixels). Synchronous. */
export function decodeJpeg(bytes: Uint8Array, options: JpegDecodeOptions = {}): RgbImage {
  const limits = { ...DEFAULT_IMAGE_LIMITS, ...options.limits };
  const out: { image?: RgbImage } = {};
  parse(bytes, { limits, out });
  return out.image!;
}

interface DecodeJob {
  limits: ImageLimits;
  out: { image?: RgbImage };
}

/** Walk the markers. With `job` null, stop at SOF and return the header; otherwise decode everything. */
function parse(bytes: Uint8Array, job: DecodeJob | null): JpegInfo | null {
  if (!isJpeg(bytes)) fail('not a JPEG file (no SOI marker)');
  const qt: (Int16Array | null)[] = [null, null, null, null];
  const dcTables: (Huffman | null)[] = [null, null, null, null];
  const acTables: (Huffman | null)[] = [null, null, null, null];
  let restartInterval = 0;
  let jfif = false;
  let adobe = -1; // Adobe transform flag, −1 when there is no Adobe marker
  let frame: Frame | null = null;
  let info: JpegInfo | null = null;
  let sawScan = false;
  const reader = new BitReader(bytes, 2);

  for (;;) {
    const marker = reader.nextMarker();
    if (marker < 0) {
      if (!sawScan) fail('the file is truncated (no image data)');
      break; // missing EOI after complete scans: tolerated, as Pillow
    }
    let p = reader.pos + 2;
    if (marker === 0xd9) break; // EOI
    if (marker >= 0xd0 && marker <= 0xd7) {
      reader.pos = p; // stray RST between scans
      continue;
    }
    if (p + 2 > bytes.length) fail('the file is truncated (inside a marker)');
    const len = (bytes[p]! << 8) | bytes[p + 1]!;
    if (len < 2 || p + len > bytes.length) fail(`the file is truncated or corrupt (marker 0xFF${marker.toString(16).toUpperCase()} of length ${len})`);
    const seg = bytes.subarray(p + 2, p + len);
    reader.pos = p + len;

    if (marker === 0xe0 && seg.length >= 14 && seg[0] === 0x4a && seg[1] === 0x46 && seg[2] === 0x49 && seg[3] === 0x46 && seg[4] === 0) {
      jfif = true;
    } else if (marker === 0xee && seg.length >= 12 && String.fromCharCode(...seg.subarray(0, 5)) === 'Adobe') {
      adobe = seg[11]!;
    } else if (marker === 0xdb) {
      for (let i = 0; i < seg.length;) {
        const pq = seg[i]! >> 4;
        const tq = seg[i]! & 15;
        if (tq > 3 || pq > 1 || i + 1 + 64 * (pq + 1) > seg.length) fail('bad quantisation table (DQT)');
        const t = new Int16Array(64);
        for (let k = 0; k < 64; k++) t[NATURAL_ORDER[k]!] = pq ? (seg[i + 1 + 2 * k]! << 8) | seg[i + 2 + 2 * k]! : seg[i + 1 + k]!;
        qt[tq] = t;
        i += 1 + 64 * (pq + 1);
      }
    } else if (marker === 0xc4) {
      for (let i = 0; i < seg.length;) {
        if (i + 17 > seg.length) fail('bad Huffman table (DHT)');
        const tc = seg[i]! >> 4;
        const th = seg[i]! & 15;
        const bits = seg.subarray(i + 1, i + 17);
        const n = bits.reduce((a, b) => a + b, 0);
        if (tc > 1 || th > 3 || n > 256 || i + 17 + n > seg.length) fail('bad Huffman table (DHT)');
        (tc ? acTables : dcTables)[th] = buildHuffman(bits, seg.slice(i + 17, i + 17 + n));
        i += 17 + n;
      }
    } else if (marker === 0xdd) {
      if (seg.length < 2) fail('bad DRI marker');
      restartInterval = (seg[0]! << 8) | seg[1]!;
    } else if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      if (frame) fail('more than one frame (SOF) marker');
      if (marker !== 0xc0 && marker !== 0xc1 && marker !== 0xc2) {
        const kind = marker >= 0xc9 ? 'arithmetic coding' : marker === 0xc3 || marker === 0xc7 ? 'lossless coding' : 'hierarchical coding';
        fail(`unsupported ${kind} (SOF${marker - 0xc0}); re-save the image as a baseline or progressive JPEG or PNG`);
      }
      frame = readFrame(seg, marker === 0xc2);
      info = {
        width: frame.width,
        height: frame.height,
        components: frame.components.length,
        progressive: frame.progressive,
        colorSpace: colorSpaceOf(frame, jfif, adobe),
      };
      if (!job) return info;
      checkImageSize(frame.width, frame.height, job.limits, 'JPEG');
      allocate(frame);
    } else if (marker === 0xda) {
      if (!frame) fail('scan (SOS) before the frame header (SOF)');
      decodeScan(frame!, seg, reader, qt, dcTables, acTables, restartInterval);
      sawScan = true;
    }
    // APPn, COM, DNL and others: skipped.
  }
  if (!frame) fail('no frame header (SOF) found');
  job!.out.image = toRgb(frame!, info!.colorSpace);
  return info;
}

function readFrame(seg: Uint8Array, progressive: boolean): Frame {
  if (seg.length < 6) fail('bad frame header (SOF)');
  if (seg[0] !== 8) fail(`unsupported ${seg[0]}-bit samples (only 8-bit JPEGs are supported, as in Pillow)`);
  const height = (seg[1]! << 8) | seg[2]!;
  const width = (seg[3]! << 8) | seg[4]!;
  const n = seg[5]!;
  if (width === 0 || height === 0) fail(`invalid image size ${width}×${height} (DNL-sized images are not supported)`);
  if (n !== 1 && n !== 3 && n !== 4) fail(`unsupported number of components: ${n}`);
  if (seg.length < 6 + 3 * n) fail('bad frame header (SOF)');
  const components: Component[] = [];
  for (let i = 0; i < n; i++) {
    const h = seg[7 + 3 * i]! >> 4;
    const v = seg[7 + 3 * i]! & 15;
    const tq = seg[8 + 3 * i]!;
    if (h < 1 || h > 4 || v < 1 || v > 4 || tq > 3) fail('bad sampling factors or table id in the frame header');
    components.push({ id: seg[6 + 3 * i]!, h, v, tq, quant: null, bw: 0, bh: 0, w: 0, hgt: 0, coefs: new Int16Array(0), pred: 0, dc: null, ac: null });
  }
  const hmax = Math.max(...components.map((c) => c.h));
  const vmax = Math.max(...components.map((c) => c.v));
  for (const c of components) {
    if (hmax % c.h || vmax % c.v) fail(`unsupported fractional sampling factors (${c.h}×${c.v} vs ${hmax}×${vmax})`);
  }
  return { width, height, progressive, components, hmax, vmax, mcusX: Math.ceil(width / (8 * hmax)), mcusY: Math.ceil(height / (8 * vmax)) };
}

function allocate(f: Frame): void {
  for (const c of f.components) {
    c.bw = f.mcusX * c.h;
    c.bh = f.mcusY * c.v;
    c.w = Math.ceil((f.width * c.h) / f.hmax);
    c.hgt = Math.ceil((f.height * c.v) / f.vmax);
    c.coefs = new Int16Array(c.bw * c.bh * 64);
  }
}

/** jdapimin.c default_decompress_parms. */
function colorSpaceOf(f: Frame, jfif: boolean, adobe: number): JpegInfo['colorSpace'] {
  const n = f.components.length;
  if (n === 1) return 'gray';
  if (n === 4) return adobe >= 0 && adobe !== 0 ? 'ycck' : 'cmyk';
  if (jfif) return 'ycbcr';
  if (adobe >= 0) return adobe === 0 ? 'rgb' : 'ycbcr';
  const [a, b, c] = f.components.map((x) => x.id);
  return a === 82 && b === 71 && c === 66 ? 'rgb' : 'ycbcr';
}

function decodeScan(
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

/** IDCT every needed block, upsample to full size, convert colours. */
function toRgb(f: Frame, cs: JpegInfo['colorSpace']): RgbImage {
  const { width: W, height: H } = f;
  const planes = f.components.map((c) => {
    if (!c.quant) fail(`component ${c.id} has no image data (no scan)`);
    const bx = Math.ceil(c.w / 8);
    const by = Math.ceil(c.hgt / 8);
    const stride = bx * 8;
    const plane = new Uint8Array(stride * by * 8);
    for (let y = 0; y < by; y++) {
      for (let x = 0; x < bx; x++) idctIslow(c.coefs, (y * c.bw + x) * 64, c.quant!, plane, y * 8 * stride + x * 8, stride);
    }
    c.coefs = new Int16Array(0); // free early
    return upsampleComponent(plane, stride, c.w, c.hgt, f.hmax / c.h, f.vmax / c.v, W, H);
  });
  const n = W * H;
  const data = new Uint8Array(n * 3);
  if (cs === 'gray') {
    const g = planes[0]!;
    for (let i = 0; i < n; i++) data[3 * i] = data[3 * i + 1] = data[3 * i + 2] = g[i]!;
  } else if (cs === 'rgb') {
    for (let i = 0; i < n; i++) {
      data[3 * i] = planes[0]![i]!;
      data[3 * i + 1] = planes[1]![i]!;
      data[3 * i + 2] = planes[2]![i]!;
    }
  } else if (cs === 'ycbcr') {
    yccToRgb(planes[0]!, planes[1]!, planes[2]!, data, n);
  } else {
    cmykToRgb(planes, cs === 'ycck', data, n);
  }
  return { width: W, height: H, data };
}
