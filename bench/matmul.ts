/**
 * Standalone matmul benchmark: the 'vec' kernel's weight-streaming rate against the adapter's streaming-read rate
 * (bench/readbw.ts), and the tiled 'mat' kernel's GFLOP/s over prompt lengths — all measured in one run on one
 * adapter, so only the ratios are meaningful on a CPU-emulated adapter.
 *
 *   vec  (T, N, K): GB/s = (N·K·2 bytes of weights) / time of one dispatch      (decode: T ≤ 4)
 *   mat  (T, N, K): GFLOP/s = 2·T·N·K / time of one dispatch                    (prefill)
 *
 * Usage (after bundling with vite, like bench/bench.ts): node <bundle> [--quick] [--no-read]
 * (e.g. add `matmul: 'bench/matmul.ts'` to vite.node.config.ts inputs, `npm run build:node`, then
 * `node -e "import('./dist/node/matmul.js').then(async (m) => { process.exitCode = await m.main(process.argv.slice(1)); })"`).
 * `benchMatmul` takes the op builder as a parameter so another version of the kernel can be compared in the same
 * process (same adapter, same load).
 */
import { createNodeGpu, releaseNodeGpu } from '../src/engine/node';
import { adapterName, sync, type Gpu } from '../src/engine/gpu';
import { createStorage, uploadStorage } from '../src/engine/buffers';
import { encode, type KernelOp } from '../src/engine/op';
import { matmulOp, type MatmulArgs } from '../src/kernels/matmul';
import { uploadMatrix, type GpuMatrix } from '../src/kernels/types';
import { measureReadBandwidth } from './readbw';

export type MatmulBuilder = (gpu: Gpu, a: MatmulArgs) => KernelOp;

export interface MatmulCase {
  name: string;
  T: number;
  N: number;
  K: number;
  variant: 'vec' | 'mat' | 'auto';
  /** Extra matmulOp options (tuning). */
  extra?: Partial<MatmulArgs>;
}

export interface MatmulResult extends MatmulCase {
  /** Which builder (key of `builds`). */
  build: string;
  /** Best (minimum) time of one dispatch over the trials: robust to other load on a shared machine. */
  ms: number;
  /** Median time of one dispatch over the trials. */
  ms_median: number;
  /** Weight bytes streamed per second (1e9) at the best time. */
  gb_s: number;
  /** 2·T·N·K / best time (1e9). */
  gflop_s: number;
}

/** Decode shapes of the brief (a square layer and a vocabulary head of a C = 768 model) and prefill shapes. */
export function defaultCases(quick = false): MatmulCase[] {
  if (quick) {
    return [
      { name: 'vec T=1 N=K=512', T: 1, N: 512, K: 512, variant: 'vec' },
      { name: 'mat T=8 N=K=256', T: 8, N: 256, K: 256, variant: 'mat' },
      { name: 'mat T=64 N=K=256', T: 64, N: 256, K: 256, variant: 'mat' },
    ];
  }
  return [
    { name: 'vec T=1 N=K=2048', T: 1, N: 2048, K: 2048, variant: 'vec' },
    { name: 'vec T=1 N=65536 K=768', T: 1, N: 65536, K: 768, variant: 'vec' },
    { name: 'vec T=1 N=768 K=768', T: 1, N: 768, K: 768, variant: 'vec' },
    { name: 'vec T=4 N=K=2048', T: 4, N: 2048, K: 2048, variant: 'vec' },
    { name: 'auto T=8 N=K=768 (→ vec)', T: 8, N: 768, K: 768, variant: 'auto' },
    { name: 'mat T=8 N=K=768', T: 8, N: 768, K: 768, variant: 'mat' },
    { name: 'mat T=16 N=K=768', T: 16, N: 768, K: 768, variant: 'mat' },
    { name: 'mat T=64 N=K=768', T: 64, N: 768, K: 768, variant: 'mat' },
    { name: 'mat T=256 N=K=768', T: 256, N: 768, K: 768, variant: 'mat' },
    { name: 'mat T=256 N=2688 K=768', T: 256, N: 2688, K: 768, variant: 'mat' },
  ];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Seconds, for differences: wall clock by default. */
export type Clock = () => number;
const wallClock: Clock = () => performance.now() / 1000;

async function timeOps(gpu: Gpu, op: KernelOp, reps: number, clock: Clock): Promise<number> {
  const enc = gpu.device.createCommandEncoder({ label: 'bench_matmul' });
  encode(gpu, Array.from({ length: reps }, () => op), enc);
  const t0 = clock();
  gpu.device.queue.submit([enc.finish()]);
  await sync(gpu);
  return clock() - t0;
}

/** Non-zero pseudo-random bf16 weights in [−1, 1) (exponent kept sane so sums stay finite). */
function randomWeights(gpu: Gpu, N: number, K: number, seed: number): GpuMatrix {
  const h = new Uint16Array(N * K);
  let s = seed >>> 0;
  for (let i = 0; i < h.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    h[i] = (s >>> 16) & 0xbfff; // sign, exponent ≤ 0x7e: |w| < 2
  }
  return uploadMatrix(gpu, `bench w ${N}x${K}`, N, K, { dtype: 'bf16', bytes: new Uint8Array(h.buffer) });
}

/**
 * Time each case with every builder in `builds` (default: { matmul: matmulOp }): one warm-up dispatch each (compile),
 * then `trials` rounds in which the builders take turns, each timing back-to-back dispatches in one submit
 * (≈ trialSeconds). Turns interleave so that every builder sees the same machine load; the best trial is kept.
 * `clock` replaces the wall clock, e.g. by the CPU time of a CPU-emulated adapter's worker threads (immune to other
 * processes sharing the cores).
 */
export async function benchMatmul(
  gpu: Gpu,
  cases: MatmulCase[],
  opts: { builds?: Record<string, MatmulBuilder>; trialSeconds?: number; trials?: number; clock?: Clock; log?: (m: string) => void } = {},
): Promise<MatmulResult[]> {
  const builds = opts.builds ?? { matmul: matmulOp };
  const clock = opts.clock ?? wallClock;
  const trialSeconds = opts.trialSeconds ?? 0.25;
  const trials = opts.trials ?? 5;
  const out: MatmulResult[] = [];
  for (const [i, c] of cases.entries()) {
    const w = randomWeights(gpu, c.N, c.K, 17 + i);
    const xv = new Float32Array(c.T * c.K);
    for (let j = 0; j < xv.length; j++) xv[j] = Math.sin(j * 0.37);
    const x = uploadStorage(gpu, 'bench x', xv);
    const y = createStorage(gpu, 'bench y', c.T * c.N * 4);
    const runs = [];
    for (const [name, build] of Object.entries(builds)) {
      const op = build(gpu, { x, w, y, T: c.T, variant: c.variant, label: `bench ${c.name}`, ...c.extra });
      const once = await timeOps(gpu, op, 1, clock);
      const reps = Math.max(1, Math.min(200, Math.round(trialSeconds / Math.max(once, 1e-5))));
      runs.push({ name, op, reps, times: [] as number[] });
    }
    for (let t = 0; t < trials; t++) {
      for (const r of runs) r.times.push((await timeOps(gpu, r.op, r.reps, clock)) / r.reps);
    }
    for (const r of runs) {
      const s = Math.min(...r.times);
      const res: MatmulResult = {
        ...c,
        build: r.name,
        ms: s * 1000,
        ms_median: median(r.times) * 1000,
        gb_s: (c.N * c.K * 2) / s / 1e9,
        gflop_s: (2 * c.T * c.N * c.K) / s / 1e9,
      };
      out.push(res);
      opts.log?.(
        `${c.name}${c.extra ? ' ' + JSON.stringify(c.extra) : ''} [${r.name}]: best ${res.ms.toFixed(3)} ms (median ${res.ms_median.toFixed(3)}), ` +
          `${res.gb_s.toFixed(3)} GB/s of weights, ${res.gflop_s.toFixed(3)} GFLOP/s`,
      );
    }
    w.buffer.destroy();
    x.destroy();
    y.destroy();
  }
  return out;
}

/** Entry point: prints one JSON object (read rate, every case, vec GB/s ÷ read rate). */
export async function main(argv: string[]): Promise<number> {
  const quick = argv.includes('--quick');
  const log = (m: string) => process.stderr.write(`[bench-matmul] ${m}\n`);
  let gpu: Gpu | undefined;
  try {
    gpu = await createNodeGpu();
    log(`adapter: ${adapterName(gpu)}`);
    let read = 0;
    if (!argv.includes('--no-read')) {
      const rb = await measureReadBandwidth(gpu, { size: quick ? 16 << 20 : 64 << 20, largeSize: quick ? 0 : 128 << 20, trials: quick ? 2 : 3, log });
      read = rb.best.gb_s;
      log(`read: best ${read.toFixed(3)} GB/s`);
    }
    const res = await benchMatmul(gpu, defaultCases(quick), { log });
    const rows = res.map((r) => ({
      name: r.name,
      ms: +r.ms.toFixed(3),
      ms_median: +r.ms_median.toFixed(3),
      gb_s: +r.gb_s.toFixed(3),
      gflop_s: +r.gflop_s.toFixed(3),
      ...(r.variant === 'vec' && read ? { read_ratio: +(r.gb_s / read).toFixed(3) } : {}),
    }));
    process.stdout.write(JSON.stringify({ adapter: adapterName(gpu), read_gb_s: +read.toFixed(3), cases: rows }, null, 2) + '\n');
    return 0;
  } catch (e) {
    process.stderr.write(`bench-matmul: ${(e as Error)?.stack ?? e}\n`);
    return 1;
  } finally {
    releaseNodeGpu(gpu);
  }
}
