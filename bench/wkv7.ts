/**
 * Standalone wkv7 benchmark: the sequential kernel ('seq') against the chunked prefill kernel ('chunked') on the same
 * inputs, ms per call (one dispatch over T tokens, all heads), median and best over interleaved trials, and the ratio
 * seq ÷ chunked (> 1: chunked is faster). Not part of `npm test`. On a CPU-emulated adapter (SwiftShader) only the
 * ratio means anything, and even that is not a GPU's: the chunked kernel trades dependent chains for independent ones,
 * which a CPU running the invocations of a workgroup one after another does not reward.
 *
 * Cases: T = 641 (a VisualRWKV-7 image prompt's order of length) at H = 12, N = 64 (C = 768), plus T = 16 and 64;
 * `--full` adds H = 32 (C = 2048) at T = 641; `--quick` runs only H = 12, T = 641 with fewer trials.
 *
 * Usage (bundled with vite like bench/bench.ts; the extra input merges into vite.node.config.ts's, nothing is edited):
 *   node -e "import('vite').then((v) => v.build({ configFile: 'vite.node.config.ts', logLevel: 'warn',
 *     build: { outDir: 'dist/bench-wkv7', rollupOptions: { input: { wkv7: 'bench/wkv7.ts' } } } }))"
 *   node -e "import('./dist/bench-wkv7/wkv7.js').then(async (m) => { process.exitCode = await m.main(process.argv.slice(1)); })" -- --quick
 */
import { createNodeGpu, releaseNodeGpu } from '../src/engine/node';
import { adapterName, sync, type Gpu } from '../src/engine/gpu';
import { createStorage, uploadStorage } from '../src/engine/buffers';
import { encode, type KernelOp } from '../src/engine/op';
import { wkv7Op, type Wkv7Args } from '../src/kernels/wkv7';

export interface Wkv7Case {
  H: number;
  N: number;
  T: number;
}

export interface Wkv7Result extends Wkv7Case {
  mode: NonNullable<Wkv7Args['mode']>;
  /** Median time of one call over the trials. */
  ms_median: number;
  /** Best (minimum) time of one call over the trials. */
  ms_best: number;
  /** Calls per trial (back to back in one submit). */
  reps: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function timeOps(gpu: Gpu, op: KernelOp, reps: number): Promise<number> {
  const enc = gpu.device.createCommandEncoder({ label: 'bench_wkv7' });
  encode(gpu, Array.from({ length: reps }, () => op), enc);
  const t0 = performance.now();
  gpu.device.queue.submit([enc.finish()]);
  await sync(gpu);
  return (performance.now() - t0) / 1000;
}

/** Deterministic inputs in the kernels' ranges: decay logits in [−8, 8), per-head unit κ̂, α in (0, 1). */
function inputs(T: number, H: number, N: number): Record<'r' | 'w' | 'k' | 'v' | 'kk' | 'alpha', Float32Array> & { S: Float32Array } {
  const C = H * N;
  let s = 12345;
  const rnd = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
  const fill = (n: number, lo: number, hi: number) => Float32Array.from({ length: n }, () => lo + (hi - lo) * rnd());
  const kk = fill(T * C, -1, 1);
  for (let o = 0; o < kk.length; o += N) {
    let q = 0;
    for (let j = 0; j < N; j++) q += kk[o + j]! ** 2;
    for (let j = 0; j < N; j++) kk[o + j]! /= Math.sqrt(q);
  }
  return {
    r: fill(T * C, -1, 1),
    w: fill(T * C, -8, 8),
    k: fill(T * C, -1, 1),
    v: fill(T * C, -1, 1),
    kk,
    alpha: fill(T * C, 0.02, 0.98),
    S: fill(H * N * N, -1, 1),
  };
}

/**
 * Time each case in both modes: one warm-up call each (pipeline compile), then `trials` rounds in which the modes take
 * turns (same machine load), each timing `reps` back-to-back calls in one submit (≈ trialSeconds per trial).
 */
export async function benchWkv7(
  gpu: Gpu,
  cases: Wkv7Case[],
  opts: { trials?: number; trialSeconds?: number; log?: (m: string) => void } = {},
): Promise<Wkv7Result[]> {
  const trials = opts.trials ?? 5;
  const trialSeconds = opts.trialSeconds ?? 0.5;
  const out: Wkv7Result[] = [];
  for (const c of cases) {
    const x = inputs(c.T, c.H, c.N);
    const b = {
      r: uploadStorage(gpu, 'bench r', x.r),
      w: uploadStorage(gpu, 'bench w', x.w),
      k: uploadStorage(gpu, 'bench k', x.k),
      v: uploadStorage(gpu, 'bench v', x.v),
      kk: uploadStorage(gpu, 'bench kk', x.kk),
      alpha: uploadStorage(gpu, 'bench alpha', x.alpha),
    };
    const state = uploadStorage(gpu, 'bench state', x.S);
    const y = createStorage(gpu, 'bench y', c.T * c.H * c.N * 4);
    const runs = [];
    for (const mode of ['seq', 'chunked'] as const) {
      const op = wkv7Op(gpu, { ...b, state, y, T: c.T, H: c.H, N: c.N, mode, label: `bench wkv7 ${mode}` });
      await timeOps(gpu, op, 1); // compile
      const once = await timeOps(gpu, op, 1);
      const reps = Math.max(1, Math.min(100, Math.round(trialSeconds / Math.max(once, 1e-5))));
      runs.push({ mode, op, reps, times: [] as number[] });
    }
    for (let t = 0; t < trials; t++) {
      for (const r of runs) r.times.push((await timeOps(gpu, r.op, r.reps)) / r.reps);
    }
    for (const r of runs) {
      const res: Wkv7Result = { ...c, mode: r.mode, ms_median: median(r.times) * 1000, ms_best: Math.min(...r.times) * 1000, reps: r.reps };
      out.push(res);
      opts.log?.(`H=${c.H} N=${c.N} T=${c.T} ${r.mode}: median ${res.ms_median.toFixed(2)} ms, best ${res.ms_best.toFixed(2)} ms (${r.reps} calls per trial)`);
    }
    for (const buf of [...Object.values(b), state, y]) buf.destroy();
  }
  return out;
}

/** Entry point: prints one JSON object (per case: seq and chunked ms, ratio seq ÷ chunked of the medians). */
export async function main(argv: string[]): Promise<number> {
  const quick = argv.includes('--quick');
  const log = (m: string) => process.stderr.write(`[bench-wkv7] ${m}\n`);
  const cases: Wkv7Case[] = quick
    ? [{ H: 12, N: 64, T: 641 }]
    : [
        { H: 12, N: 64, T: 16 },
        { H: 12, N: 64, T: 64 },
        { H: 12, N: 64, T: 641 },
        ...(argv.includes('--full') ? [{ H: 32, N: 64, T: 641 }] : []),
      ];
  let gpu: Gpu | undefined;
  try {
    gpu = await createNodeGpu();
    log(`adapter: ${adapterName(gpu)}`);
    const res = await benchWkv7(gpu, cases, { trials: quick ? 3 : 5, log });
    const rows = cases.map((c) => {
      const get = (mode: string) => res.find((r) => r.H === c.H && r.N === c.N && r.T === c.T && r.mode === mode)!;
      const s = get('seq');
      const ch = get('chunked');
      return {
        H: c.H,
        N: c.N,
        T: c.T,
        seq_ms: +s.ms_median.toFixed(3),
        chunked_ms: +ch.ms_median.toFixed(3),
        seq_best_ms: +s.ms_best.toFixed(3),
        chunked_best_ms: +ch.ms_best.toFixed(3),
        ratio_seq_over_chunked: +(s.ms_median / ch.ms_median).toFixed(3),
      };
    });
    process.stdout.write(JSON.stringify({ adapter: adapterName(gpu), cases: rows }, null, 2) + '\n');
    return 0;
  } catch (e) {
    process.stderr.write(`bench-wkv7: ${(e as Error)?.stack ?? e}\n`);
    return 1;
  } finally {
    releaseNodeGpu(gpu);
  }
}
