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
import { checkImageSize, DEFAULT_IMAGE_LIMITS, type ImageLimits, type RgbImage } from './image';
import { cmykToRgb, idctIslow, NATURAL_ORDER, upsampleComponent, yccToRgb } from './jpeg-pixels';
import { buildHuffman, BitReader, decodeScan, fail, type Component, type Frame, type Huffman } from './jpeg-scan';

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
