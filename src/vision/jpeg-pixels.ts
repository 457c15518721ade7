/**
 * The sample-domain half of the JPEG decoder (jpeg.ts), written to give libjpeg-turbo's default decompression output
 * bit for bit (the output Pillow and the browsers' libjpeg-turbo give):
 * - `idctIslow`: jidctint.c `jpeg_idct_islow` (13-bit fixed point, PASS1_BITS = 2) with its post-IDCT range-limit
 *   table (index masked with 1023, so wildly out-of-range values wrap exactly as in C);
 * - `upsampleComponent`: jdsample.c "fancy" triangle-filter upsampling for 2:1 horizontal (h2v1), 2:1 vertical
 *   (h1v2) and both (h2v2), box replication for h2v1/h2v2 when the subsampled width is ≤ 2 and for other integral
 *   factors (int_upsample);
 * - `yccToRgb`, `cmykToRgb`: jdcolor.c YCbCr→RGB (16-bit fixed-point tables) and Pillow's CMYK→RGB.
 * Values that can exceed 32 bits in C's 64-bit JLONG arithmetic are kept as exact doubles here.
 */

/** Zigzag index → natural (row-major) index, padded with 16 × 63 so corrupt run lengths stay in bounds (as libjpeg). */
export const NATURAL_ORDER = Int32Array.of(
  0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
  35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
  63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63,
);

/** libjpeg's post-IDCT range limit (`IDCT_range_limit`): index = value & 1023, value centred on 0 → sample 0..255. */
const IDCT_LIMIT = (() => {
  const t = new Uint8Array(1024);
  for (let i = 0; i < 1024; i++) {
    const x = (i < 512 ? i : i - 1024) + 128;
    t[i] = x < 0 ? 0 : x > 255 ? 255 : x;
  }
  return t;
})();

// jidctint.c constants: FIX(x) = round(x · 2^13).
const F_0_298631336 = 2446;
const F_0_390180644 = 3196;
const F_0_541196100 = 4433;
const F_0_765366865 = 6270;
const F_0_899976223 = 7373;
const F_1_175875602 = 9633;
const F_1_501321110 = 12299;
const F_1_847759065 = 15137;
const F_1_961570560 = 16069;
const F_2_053119869 = 16819;
const F_2_562915447 = 20995;
const F_3_072711026 = 25172;
const CONST_SCALE = 8192; // 2^CONST_BITS

/** DESCALE(x, n) = (x + 2^(n−1)) >> n with an arithmetic shift, exact for |x| < 2^53. */
const descale11 = (x: number) => Math.floor((x + 1024) / 2048);
const descale18 = (x: number) => Math.floor((x + 131072) / 262144);

const ws = new Int32Array(64); // pass-1 workspace: `int` in C

/**
 * Dequantise and inverse-DCT one 8×8 block: `coefs[at..at+64)` (natural order), quantiser `q` (natural order, as
 * libjpeg's 16-bit ISLOW multiplier table), into `out` at `o` with row stride `stride`.
 */
export function idctIslow(coefs: Int16Array, at: number, q: Int16Array, out: Uint8Array, o: number, stride: number): void {
  // Pass 1: columns → workspace, scaled up by 2^PASS1_BITS.
  for (let c = 0; c < 8; c++) {
    const i = at + c;
    if (coefs[i + 8] === 0 && coefs[i + 16] === 0 && coefs[i + 24] === 0 && coefs[i + 32] === 0 &&
        coefs[i + 40] === 0 && coefs[i + 48] === 0 && coefs[i + 56] === 0) {
      const dc = coefs[i]! * q[c]! * 4;
      ws[c] = dc; ws[c + 8] = dc; ws[c + 16] = dc; ws[c + 24] = dc;
      ws[c + 32] = dc; ws[c + 40] = dc; ws[c + 48] = dc; ws[c + 56] = dc;
      continue;
    }
    let z2 = coefs[i + 16]! * q[c + 16]!;
    let z3 = coefs[i + 48]! * q[c + 48]!;
    let z1 = (z2 + z3) * F_0_541196100;
    let tmp2 = z1 + z3 * -F_1_847759065;
    let tmp3 = z1 + z2 * F_0_765366865;
    z2 = coefs[i]! * q[c]!;
    z3 = coefs[i + 32]! * q[c + 32]!;
    let tmp0 = (z2 + z3) * CONST_SCALE;
    let tmp1 = (z2 - z3) * CONST_SCALE;
    const tmp10 = tmp0 + tmp3;
    const tmp13 = tmp0 - tmp3;
    const tmp11 = tmp1 + tmp2;
    const tmp12 = tmp1 - tmp2;
    tmp0 = coefs[i + 56]! * q[c + 56]!;
    tmp1 = coefs[i + 40]! * q[c + 40]!;
    tmp2 = coefs[i + 24]! * q[c + 24]!;
    tmp3 = coefs[i + 8]! * q[c + 8]!;
    z1 = tmp0 + tmp3;
    z2 = tmp1 + tmp2;
    z3 = tmp0 + tmp2;
    let z4 = tmp1 + tmp3;
    const z5 = (z3 + z4) * F_1_175875602;
    tmp0 *= F_0_298631336;
    tmp1 *= F_2_053119869;
    tmp2 *= F_3_072711026;
    tmp3 *= F_1_501321110;
    z1 *= -F_0_899976223;
    z2 *= -F_2_562915447;
    z3 = z3 * -F_1_961570560 + z5;
    z4 = z4 * -F_0_390180644 + z5;
    tmp0 += z1 + z3;
    tmp1 += z2 + z4;
    tmp2 += z2 + z3;
    tmp3 += z1 + z4;
    ws[c] = descale11(tmp10 + tmp3);
    ws[c + 56] = descale11(tmp10 - tmp3);
    ws[c + 8] = descale11(tmp11 + tmp2);
    ws[c + 48] = descale11(tmp11 - tmp2);
    ws[c + 16] = descale11(tmp12 + tmp1);
    ws[c + 40] = descale11(tmp12 - tmp1);
    ws[c + 24] = descale11(tmp13 + tmp0);
    ws[c + 32] = descale11(tmp13 - tmp0);
  }
  // Pass 2: rows → samples, descaled by 2^(CONST_BITS + PASS1_BITS + 3) and range-limited.
  for (let r = 0; r < 8; r++, o += stride) {
    const w = r * 8;
    if (ws[w + 1] === 0 && ws[w + 2] === 0 && ws[w + 3] === 0 && ws[w + 4] === 0 && ws[w + 5] === 0 && ws[w + 6] === 0 && ws[w + 7] === 0) {
      const v = IDCT_LIMIT[Math.floor((ws[w]! + 16) / 32) & 1023]!;
      out.fill(v, o, o + 8);
      continue;
    }
    let z2 = ws[w + 2]!;
    let z3 = ws[w + 6]!;
    let z1 = (z2 + z3) * F_0_541196100;
    let tmp2 = z1 + z3 * -F_1_847759065;
    let tmp3 = z1 + z2 * F_0_765366865;
    let tmp0 = (ws[w]! + ws[w + 4]!) * CONST_SCALE;
    let tmp1 = (ws[w]! - ws[w + 4]!) * CONST_SCALE;
    const tmp10 = tmp0 + tmp3;
    const tmp13 = tmp0 - tmp3;
    const tmp11 = tmp1 + tmp2;
    const tmp12 = tmp1 - tmp2;
    tmp0 = ws[w + 7]!;
    tmp1 = ws[w + 5]!;
    tmp2 = ws[w + 3]!;
    tmp3 = ws[w + 1]!;
    z1 = tmp0 + tmp3;
    z2 = tmp1 + tmp2;
    z3 = tmp0 + tmp2;
    let z4 = tmp1 + tmp3;
    const z5 = (z3 + z4) * F_1_175875602;
    tmp0 *= F_0_298631336;
    tmp1 *= F_2_053119869;
    tmp2 *= F_3_072711026;
    tmp3 *= F_1_501321110;
    z1 *= -F_0_899976223;
    z2 *= -F_2_562915447;
    z3 = z3 * -F_1_961570560 + z5;
    z4 = z4 * -F_0_390180644 + z5;
    tmp0 += z1 + z3;
    tmp1 += z2 + z4;
    tmp2 += z2 + z3;
    tmp3 += z1 + z4;
    out[o] = IDCT_LIMIT[descale18(tmp10 + tmp3) & 1023]!;
    out[o + 7] = IDCT_LIMIT[descale18(tmp10 - tmp3) & 1023]!;
    out[o + 1] = IDCT_LIMIT[descale18(tmp11 + tmp2) & 1023]!;
    out[o + 6] = IDCT_LIMIT[descale18(tmp11 - tmp2) & 1023]!;
    out[o + 2] = IDCT_LIMIT[descale18(tmp12 + tmp1) & 1023]!;
    out[o + 5] = IDCT_LIMIT[descale18(tmp12 - tmp1) & 1023]!;
    out[o + 3] = IDCT_LIMIT[descale18(tmp13 + tmp0) & 1023]!;
    out[o + 4] = IDCT_LIMIT[descale18(tmp13 - tmp0) & 1023]!;
  }
}

/**
 * One component's samples (`w × h` valid samples in a plane of row stride `stride`) → a full-size `W × H` plane,
 * for a component subsampled by integer factors `fx × fy` relative to the largest sampling factors.
 */
export function upsampleComponent(
  src: Uint8Array, stride: number, w: number, h: number, fx: number, fy: number, W: number, H: number,
): Uint8Array {
  const out = new Uint8Array(W * H);
  if (fx === 1 && fy === 1) {
    for (let y = 0; y < H; y++) out.set(src.subarray(y * stride, y * stride + W), y * W);
    return out;
  }
  const fancyH = fx === 2 && w > 2; // h2v1 / h2v2 fancy need a subsampled width > 2
  if (fx === 2 && fy === 1 && fancyH) {
    for (let y = 0; y < H; y++) {
      const s = y * stride;
      const o = y * W;
      for (let x = 0; x < W; x++) {
        const j = x >> 1;
        const near = src[s + j]! * 3;
        // Even outputs lean left (+1), odd lean right (+2); edges replicate the edge sample.
        out[o + x] = x & 1
          ? (near + src[s + Math.min(j + 1, w - 1)]! + 2) >> 2
          : (near + src[s + Math.max(j - 1, 0)]! + 1) >> 2;
      }
    }
    return out;
  }
  if (fx === 1 && fy === 2) {
    for (let y = 0; y < H; y++) {
      const i = y >> 1;
      const s0 = i * stride;
      const s1 = (y & 1 ? Math.min(i + 1, h - 1) : Math.max(i - 1, 0)) * stride;
      const bias = y & 1 ? 2 : 1;
      const o = y * W;
      for (let x = 0; x < W; x++) out[o + x] = (src[s0 + x]! * 3 + src[s1 + x]! + bias) >> 2;
    }
    return out;
  }
  if (fx === 2 && fy === 2 && fancyH) {
    const colsum = new Int32Array(w);
    for (let y = 0; y < H; y++) {
      const i = y >> 1;
      const s0 = i * stride;
      const s1 = (y & 1 ? Math.min(i + 1, h - 1) : Math.max(i - 1, 0)) * stride;
      for (let j = 0; j < w; j++) colsum[j] = src[s0 + j]! * 3 + src[s1 + j]!;
      const o = y * W;
      for (let x = 0; x < W; x++) {
        const j = x >> 1;
        const near = colsum[j]! * 3;
        out[o + x] = x & 1
          ? (near + colsum[Math.min(j + 1, w - 1)]! + 7) >> 4
          : (near + colsum[Math.max(j - 1, 0)]! + 8) >> 4;
      }
    }
    return out;
  }
  // Box replication (h2v1/h2v2 with a narrow component, int_upsample for other integral factors).
  for (let y = 0; y < H; y++) {
    const s = Math.floor(y / fy) * stride;
    const o = y * W;
    for (let x = 0; x < W; x++) out[o + x] = src[s + Math.floor(x / fx)]!;
  }
  return out;
}

// jdcolor.c build_ycc_rgb_table: SCALEBITS = 16, FIX(x) = round(x · 2^16).
const CR_R = new Int32Array(256);
const CB_B = new Int32Array(256);
const CR_G = new Int32Array(256);
const CB_G = new Int32Array(256);
for (let i = 0; i < 256; i++) {
  const x = i - 128;
  CR_R[i] = (91881 * x + 32768) >> 16;
  CB_B[i] = (116130 * x + 32768) >> 16;
  CR_G[i] = -46802 * x;
  CB_G[i] = -22554 * x + 32768;
}
const clamp255 = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : v);

/** libjpeg YCbCr → RGB for `n` pixels of full-size planes into interleaved RGB `out` (3 bytes per pixel). */
export function yccToRgb(Y: Uint8Array, Cb: Uint8Array, Cr: Uint8Array, out: Uint8Array, n: number): void {
  for (let i = 0, o = 0; i < n; i++, o += 3) {
    const y = Y[i]!;
    const cb = Cb[i]!;
    const cr = Cr[i]!;
    out[o] = clamp255(y + CR_R[cr]!);
    out[o + 1] = clamp255(y + ((CB_G[cb]! + CR_G[cr]!) >> 16));
    out[o + 2] = clamp255(y + CB_B[cb]!);
  }
}

/**
 * 4-component JPEG → RGB as Pillow: libjpeg's CMYK output (YCCK converted by `ycck_cmyk_convert` first), inverted
 * (Pillow's rawmode `CMYK;I`, "assume Adobe conventions"), then Pillow's `cmyk2rgb`:
 * v = clip(nk − nk·c/255) with nk = 255 − k and MULDIV255 rounding.
 */
export function cmykToRgb(planes: Uint8Array[], ycck: boolean, out: Uint8Array, n: number): void {
  const [p0, p1, p2, p3] = planes as [Uint8Array, Uint8Array, Uint8Array, Uint8Array];
  const c = [0, 0, 0];
  for (let i = 0, o = 0; i < n; i++, o += 3) {
    if (ycck) {
      const y = p0[i]!;
      const cb = p1[i]!;
      const cr = p2[i]!;
      c[0] = clamp255(255 - (y + CR_R[cr]!));
      c[1] = clamp255(255 - (y + ((CB_G[cb]! + CR_G[cr]!) >> 16)));
      c[2] = clamp255(255 - (y + CB_B[cb]!));
    } else {
      c[0] = p0[i]!;
      c[1] = p1[i]!;
      c[2] = p2[i]!;
    }
    const nk = p3[i]!; // 255 − inverted K
    for (let k = 0; k < 3; k++) {
      const t = (255 - c[k]!) * nk + 128; // inverted C/M/Y times nk
      out[o + k] = clamp255(nk - (((t >> 8) + t) >> 8));
    }
  }
}
