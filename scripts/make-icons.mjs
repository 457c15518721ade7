#!/usr/bin/env node
/**
 * Draws the app icons (public/icons/*.png) with a tiny PNG encoder: a white "V" under an arc (an eye / a lens) on
 * the app's accent blue. `icon-<n>.png` have rounded corners (purpose "any"); `icon-maskable-512.png` is full-bleed
 * with the drawing inside the maskable safe zone. Anti-aliased by 4×4 supersampling of signed distances.
 * Run: node scripts/make-icons.mjs
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { deflateSync } from 'node:zlib';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const OUT = join(dirname(fileURLToPath(import.meta.url)), '../public/icons');
const ACCENT = [0x2f, 0x6f, 0xd6];
const WHITE = [0xff, 0xff, 0xff];

const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}
/** RGBA8 pixels (width*height*4) → PNG bytes. */
export function encodePng(width, height, rgba) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 6; // RGBA
  const raw = Buffer.alloc(height * (1 + width * 4));
  for (let y = 0; y < height; y++) {
    raw[y * (1 + width * 4)] = 0; // filter: none
    Buffer.from(rgba.buffer, rgba.byteOffset + y * width * 4, width * 4).copy(raw, y * (1 + width * 4) + 1);
  }
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([sig, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw, { level: 9 })), chunk('IEND', Buffer.alloc(0))]);
}

// Signed distances in unit coordinates (0..1), negative inside.
const segment = (px, py, ax, ay, bx, by) => {
  const dx = bx - ax, dy = by - ay;
  const t = Math.max(0, Math.min(1, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)));
  return Math.hypot(px - ax - t * dx, py - ay - t * dy);
};
const roundedBox = (px, py, half, r) => {
  const qx = Math.abs(px - 0.5) - half + r, qy = Math.abs(py - 0.5) - half + r;
  return Math.hypot(Math.max(qx, 0), Math.max(qy, 0)) + Math.min(Math.max(qx, qy), 0) - r;
};

/** Coverage of the white drawing at (x, y), scaled by `k` around the centre (maskable: smaller). */
function glyph(x, y, k) {
  const px = 0.5 + (x - 0.5) / k, py = 0.5 + (y - 0.5) / k;
  const w = 0.055; // half stroke width
  const v = Math.min(segment(px, py, 0.3, 0.4, 0.5, 0.76), segment(px, py, 0.7, 0.4, 0.5, 0.76)) - w;
  // Arc: the upper part of a circle around (0.5, 0.62), radius 0.36, above y = 0.42.
  const ring = Math.abs(Math.hypot(px - 0.5, py - 0.62) - 0.36) - w * 0.8;
  const arc = py < 0.42 ? ring : Infinity;
  const dot = Math.hypot(px - 0.5, py - 0.46) - 0.06;
  return Math.min(v, arc, dot) * k;
}

function render(size, maskable) {
  const px = new Uint8Array(size * size * 4);
  const S = 4;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let bg = 0, fg = 0;
      for (let sy = 0; sy < S; sy++) {
        for (let sx = 0; sx < S; sx++) {
          const u = (x + (sx + 0.5) / S) / size, v = (y + (sy + 0.5) / S) / size;
          const inBg = maskable ? true : roundedBox(u, v, 0.5, 0.18) <= 0;
          if (!inBg) continue;
          bg++;
          if (glyph(u, v, maskable ? 0.8 : 1) <= 0) fg++;
        }
      }
      const a = bg / (S * S), f = bg ? fg / bg : 0;
      const i = (y * size + x) * 4;
      for (let c = 0; c < 3; c++) px[i + c] = Math.round(ACCENT[c] * (1 - f) + WHITE[c] * f);
      px[i + 3] = Math.round(a * 255);
    }
  }
  return encodePng(size, size, px);
}

mkdirSync(OUT, { recursive: true });
for (const [name, size, maskable] of [['icon-192.png', 192, false], ['icon-512.png', 512, false], ['icon-maskable-512.png', 512, true]]) {
  const png = render(size, maskable);
  writeFileSync(join(OUT, name), png);
  console.log(`${name}: ${size}×${size}, ${png.length} bytes`);
}
