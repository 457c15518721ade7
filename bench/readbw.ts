/**
 * The adapter's streaming-read rate: a WGSL kernel sums a large buffer into per-workgroup partials; the best
 * bytes/time over a few buffer sizes and launch shapes is the roofline the model's decode is compared to.
 *
 * Kernel `bench_read` (inline below):
 *   partials[g] = Σ over the words w read by workgroup g of (w.x + w.y + w.z + w.w)   (u32, wrapping)
 *   entry `main`, dispatch (groups, 1, 1), workgroup size WG (override, power of two ≤ 256)
 *   defines: WORD = 'vec4<u32>' | 'u32' (with VEC4 set for the vector form); the access pattern:
 *            (none)  grid-stride loop over all threads (GPU-coalesced),
 *            BLOCKED each workgroup owns a contiguous block, its lanes stride by WG inside it (coalesced + local),
 *            CHUNKED each thread reads its own contiguous run (CPU-style).
 */
import type { Gpu } from '../src/engine/gpu';
import { sync } from '../src/engine/gpu';
import { createStorage, createUniform, writeBuffer } from '../src/engine/buffers';
import { encode, type KernelOp } from '../src/engine/op';

const CODE = /* wgsl */ `
struct Dims { n: u32, per_thread: u32, total_threads: u32, per_group: u32 }
override WG: u32 = 256;
@group(0) @binding(0) var<storage, read> src: array<WORD>;         // (n) words of 16 or 4 bytes
@group(0) @binding(1) var<storage, read_write> partials: array<u32>; // (groups)
@group(0) @binding(2) var<uniform> dims: Dims;
var<workgroup> red: array<u32, 256>;

fn fold(w: WORD) -> u32 {
#ifdef VEC4
  return w.x + w.y + w.z + w.w;
#else
  return w;
#endif
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let tid = wid.x * WG + lid.x;
  var acc = 0u;
#ifdef CHUNKED
  let begin = min(tid * dims.per_thread, dims.n);
  let end = min(begin + dims.per_thread, dims.n);
  for (var i = begin; i < end; i++) { acc += fold(src[i]); }
#else
#ifdef BLOCKED
  let start = min(wid.x * dims.per_group, dims.n);
  let stop = min(start + dims.per_group, dims.n);
  for (var i = start + lid.x; i < stop; i += WG) { acc += fold(src[i]); }
#else
  for (var i = tid; i < dims.n; i += dims.total_threads) { acc += fold(src[i]); }
#endif
#endif
  red[lid.x] = acc;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid.x < s) { red[lid.x] += red[lid.x + s]; }
    workgroupBarrier();
  }
  if (lid.x == 0u) { partials[wid.x] = red[0]; }
}
`;

export type ReadPattern = 'strided' | 'blocked' | 'chunked';

export interface ReadConfig {
  bytes: number;
  vec4: boolean;
  pattern: ReadPattern;
  wg: number;
  threads: number;
}

export interface ReadResult extends ReadConfig {
  /** Median GB/s (1e9 bytes/s) over the trials. */
  gb_s: number;
}

export interface ReadBandwidthOptions {
  /** Buffer size every launch shape is tried at (bytes, multiple of 16; capped by the device limits). */
  size?: number;
  /** A larger size the best `recheck` shapes are measured at again (0 = skip). */
  largeSize?: number;
  recheck?: number;
  /** Timed trials per config (median is kept). */
  trials?: number;
  /** Target wall time of one trial; dispatches are repeated in one submit to reach it. */
  trialSeconds?: number;
  log?: (msg: string) => void;
}

/**
 * Launch shapes: GPU-style grid-stride loops over many threads (coalesced), per-workgroup blocks, and CPU-style
 * contiguous runs per thread over few threads (what SwiftShader's emulation prefers); vec4 and scalar loads.
 */
const SHAPES: Omit<ReadConfig, 'bytes'>[] = [
  { vec4: true, pattern: 'strided', wg: 256, threads: 65536 },
  { vec4: true, pattern: 'strided', wg: 64, threads: 16384 },
  { vec4: true, pattern: 'blocked', wg: 256, threads: 16384 },
  { vec4: true, pattern: 'blocked', wg: 64, threads: 1024 },
  { vec4: true, pattern: 'blocked', wg: 64, threads: 256 },
  { vec4: false, pattern: 'blocked', wg: 64, threads: 1024 },
  { vec4: true, pattern: 'chunked', wg: 64, threads: 1024 },
  { vec4: true, pattern: 'chunked', wg: 64, threads: 4096 },
];

/** Wall time of `reps` back-to-back dispatches of `op`, submitted together and awaited. */
async function timeDispatches(gpu: Gpu, op: KernelOp, reps: number): Promise<number> {
  const enc = gpu.device.createCommandEncoder({ label: 'bench_read' });
  encode(gpu, Array.from({ length: reps }, () => op), enc);
  const t0 = performance.now();
  gpu.device.queue.submit([enc.finish()]);
  await sync(gpu);
  return (performance.now() - t0) / 1000;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * Best streaming-read GB/s of the adapter, and every config's result (best first): every shape at `size`, then the
 * best `recheck` shapes at `largeSize`.
 */
export async function measureReadBandwidth(gpu: Gpu, opts: ReadBandwidthOptions = {}): Promise<{ best: ReadResult; all: ReadResult[] }> {
  const log = opts.log ?? (() => {});
  const limit = Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize);
  const cap = (s: number) => Math.floor(Math.min(s, limit) / 16) * 16;
  const trials = opts.trials ?? 3;
  const trialSeconds = opts.trialSeconds ?? 0.15;
  const maxGroups = Math.max(...SHAPES.map((s) => s.threads / s.wg));
  const partials = createStorage(gpu, 'bench_read.partials', maxGroups * 4);

  const measure = async (bytes: number, shapes: Omit<ReadConfig, 'bytes'>[]): Promise<ReadResult[]> => {
    const src = createStorage(gpu, `bench_read.src.${bytes}`, bytes);
    // Non-zero contents (some GPUs compress zero pages): a 4 MiB pattern repeated.
    const pattern = new Uint32Array(Math.min(bytes, 4 << 20) / 4);
    for (let i = 0; i < pattern.length; i++) pattern[i] = Math.imul(i + 1, 0x9e3779b1) >>> 0;
    for (let off = 0; off < bytes; off += pattern.byteLength) {
      writeBuffer(gpu, src, off, pattern.subarray(0, Math.min(pattern.length, (bytes - off) / 4)));
    }
    const out: ReadResult[] = [];
    for (const sh of shapes) {
      const n = bytes / (sh.vec4 ? 16 : 4);
      const groups = sh.threads / sh.wg;
      const dims = createUniform(gpu, 'bench_read.dims', new Uint32Array([n, Math.ceil(n / sh.threads), sh.threads, Math.ceil(n / groups)]));
      const op: KernelOp = {
        kind: 'kernel',
        label: 'bench_read',
        shader: { name: 'bench_read', code: CODE },
        entry: 'main',
        defines: { WORD: sh.vec4 ? 'vec4<u32>' : 'u32', VEC4: sh.vec4, CHUNKED: sh.pattern === 'chunked', BLOCKED: sh.pattern === 'blocked' },
        overrides: { WG: sh.wg },
        layout: ['read', 'rw', 'uniform'],
        bindings: [src, partials, dims],
        workgroups: [groups],
      };
      const once = await timeDispatches(gpu, op, 1); // compile + first touch
      const reps = Math.max(1, Math.min(64, Math.round(trialSeconds / Math.max(once, 1e-4))));
      const rates: number[] = [];
      for (let t = 0; t < trials; t++) rates.push((bytes * reps) / (await timeDispatches(gpu, op, reps)) / 1e9);
      const r: ReadResult = { bytes, ...sh, gb_s: median(rates) };
      out.push(r);
      log(`  read ${bytes >> 20} MiB ${sh.vec4 ? 'vec4' : 'u32 '} ${sh.pattern} wg=${sh.wg} threads=${sh.threads}: ${r.gb_s.toFixed(2)} GB/s`);
      dims.destroy();
    }
    src.destroy();
    return out;
  };

  const all = await measure(cap(opts.size ?? 64 << 20), SHAPES);
  all.sort((a, b) => b.gb_s - a.gb_s);
  const large = cap(opts.largeSize ?? 256 << 20);
  const recheck = opts.recheck ?? 2;
  if (recheck > 0 && large > all[0]!.bytes) {
    all.push(...(await measure(large, all.slice(0, recheck).map(({ vec4, pattern, wg, threads }) => ({ vec4, pattern, wg, threads })))));
    all.sort((a, b) => b.gb_s - a.gb_s);
  }
  partials.destroy();
  return { best: all[0]!, all };
}
