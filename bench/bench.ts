/**
 * `npm run bench`: decode and prefill speed of the RWKV-6 engine on synthetic weights, against the adapter's own
 * streaming-read rate. Prints ONE JSON object on stdout; progress and elapsed times go to stderr.
 *
 *   read_gb_s            best streaming-read rate of a plain WGSL sum kernel (bench/readbw.ts)
 *   decode_tok_s         real-shape model (L=12, C=768, V=65536, BF16): 1 / median wall time of decode(id)
 *   weights_gb_s         16-bit matrix bytes per token (all layers + head) × decode_tok_s
 *   roofline_ratio       weights_gb_s / read_gb_s
 *   prefill_tok_s        641 rows (64 text ids + 577 image rows of length C), bidirectional off, end to end
 *   decode_ms_at_512 / _at_16384, flat_ratio   small model (L=4, C=128, V=1024) decoded at two positions
 *
 * Timing is wall clock around the awaited call; every model call returns logits read back from the GPU, which
 * forces completion. Pipelines are compiled by warm-up calls first; medians are reported. Only the public API of
 * RwkvModel (load, prefill, decode, reset, state snapshots, dispatchesPerLayerToken) is used.
 *
 * Time budget (--budget, default 540 s): the whole run must fit in 10 minutes even on a CPU-emulated adapter. When
 * the adapter is too slow for the full workload, the prefill prompt is shortened (keeping its text/image mix) and
 * the flat test stops short of 16384; the JSON then says so (`prefill_rows`, `flat_far_position`, `notes`) and
 * `decode_ms_at_16384` is null (as `decode_ms_at_512` is under --quick, whose positions are 64 and 512):
 * `decode_ms_near` / `decode_ms_far` at `flat_near_position` / `flat_far_position` are always given.
 *
 * Usage: node bin/bench.mjs [--quick] [--seed N] [--budget SECONDS]
 *   --quick   tiny shapes everywhere (a smoke run in seconds; numbers are not comparable)
 */
import { createNodeGpu, releaseNodeGpu } from '../src/engine/node';
import { adapterName, sync, type Gpu } from '../src/engine/gpu';
import { submit } from '../src/engine/op';
import { RwkvModel, type InputRow } from '../src/model/model';
import { measureReadBandwidth } from './readbw';
import {
  rwkv6MatrixBytesPerToken,
  rwkv6Shapes,
  syntheticRwkv6Bytes,
  syntheticRwkv6Checkpoint,
  seededUniform,
  type SyntheticRwkv6Options,
} from './synthetic';

const USAGE = 'usage: node bin/bench.mjs [--quick] [--seed N] [--budget SECONDS]\n';

interface Plan {
  quick: boolean;
  seed: number;
  /** Seconds the whole run may take. */
  budgetS: number;
  read: { size: number; largeSize: number; trials: number };
  main: SyntheticRwkv6Options & { maxRows: number };
  decode: { warmup: number; minSteps: number; maxSteps: number; budgetS: number };
  prefill: { textIds: number; imageRows: number; maxRuns: number };
  flat: SyntheticRwkv6Options & { maxRows: number; positions: [number, number]; steps: number; warmup: number };
}

function plan(quick: boolean, seed: number, budgetS: number): Plan {
  if (quick) {
    return {
      quick, seed, budgetS,
      read: { size: 16 << 20, largeSize: 0, trials: 2 },
      main: { L: 2, C: 128, V: 1024, seed, maxRows: 64 },
      decode: { warmup: 2, minSteps: 3, maxSteps: 5, budgetS: 2 },
      prefill: { textIds: 16, imageRows: 49, maxRuns: 2 },
      flat: { L: 2, C: 128, V: 1024, seed: seed + 1, maxRows: 256, positions: [64, 512], steps: 5, warmup: 2 },
    };
  }
  return {
    quick, seed, budgetS,
    read: { size: 64 << 20, largeSize: 256 << 20, trials: 3 },
    main: { L: 12, C: 768, V: 65536, seed, maxRows: 256 },
    decode: { warmup: 2, minSteps: 3, maxSteps: 64, budgetS: 8 },
    prefill: { textIds: 64, imageRows: 577, maxRuns: 3 },
    flat: { L: 4, C: 128, V: 1024, seed: seed + 1, maxRows: 512, positions: [512, 16384], steps: 20, warmup: 3 },
  };
}

const T0 = performance.now();
const now = () => (performance.now() - T0) / 1000;
function log(msg: string): void {
  process.stderr.write(`[bench ${now().toFixed(1)}s] ${msg}\n`);
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Round to `digits` significant digits (for the JSON). */
function round(x: number, digits = 4): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const p = 10 ** Math.max(0, digits - 1 - Math.floor(Math.log10(Math.abs(x))));
  return Math.round(x * p) / p;
}

/** Non-finite entries of a logits vector (a sanity check on the synthetic weights and the kernels). */
function nonFinite(x: Float32Array | null): number {
  if (!x) return 0;
  let n = 0;
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i]!)) n++;
  return n;
}

async function timeIt<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t0 = performance.now();
  const r = await fn();
  return [(performance.now() - t0) / 1000, r];
}

class Notes {
  readonly list: string[] = [];
  add(msg: string): void {
    if (!this.list.includes(msg)) this.list.push(msg);
  }
  checkLogits(what: string, logits: Float32Array | null): void {
    const bad = nonFinite(logits);
    if (bad) this.add(`${what}: logits had non-finite values (${bad} of ${logits!.length} in one call)`);
  }
}

/** A prompt of n rows keeping the 64 : 577 text/image mix (text first). */
function promptShape(n: number, P: Plan): { textIds: number; imageRows: number } {
  const full = P.prefill.textIds + P.prefill.imageRows;
  if (n >= full) return { textIds: P.prefill.textIds, imageRows: P.prefill.imageRows };
  const textIds = Math.max(1, Math.round((n * P.prefill.textIds) / full));
  return { textIds, imageRows: n - textIds };
}

async function run(gpu: Gpu, P: Plan): Promise<Record<string, unknown>> {
  const notes = new Notes();
  const deadline = P.budgetS;
  const left = () => deadline - now();
  const rand = seededUniform(P.seed ^ 0x5eed);
  const adapter = adapterName(gpu);
  log(`adapter: ${adapter} (features: ${JSON.stringify(gpu.features)}); budget ${P.budgetS}s`);

  // ---- 1. Streaming-read roofline ----
  log('streaming-read kernel …');
  const rb = await measureReadBandwidth(gpu, { size: P.read.size, largeSize: P.read.largeSize, trials: P.read.trials, log });
  const read_gb_s = rb.best.gb_s;
  log(`read: best ${read_gb_s.toFixed(2)} GB/s (${rb.best.bytes >> 20} MiB, ${rb.best.vec4 ? 'vec4' : 'u32'}, ${rb.best.pattern}, wg ${rb.best.wg}, ${rb.best.threads} threads)`);

  // ---- 2. Real-shape model: decode ----
  const shapes = rwkv6Shapes(P.main);
  const matrixBytes = rwkv6MatrixBytesPerToken(shapes);
  log(`model L=${shapes.L} C=${shapes.C} V=${shapes.V} F=${shapes.F}: ${(syntheticRwkv6Bytes(P.main) / 1e6).toFixed(0)} MB BF16, ${(matrixBytes / 1e6).toFixed(1)} MB of matrices per token`);
  const ckpt = await syntheticRwkv6Checkpoint(P.main);
  const [loadS, model] = await timeIt(() => RwkvModel.load(gpu, ckpt, { maxRows: P.main.maxRows }));
  log(`loaded in ${loadS.toFixed(1)}s (generated + uploaded)`);
  const { V, C } = shapes;
  const randId = () => Math.floor(rand() * V);

  model.reset();
  for (let i = 0; i < P.decode.warmup; i++) {
    const [dt, logits] = await timeIt(() => model.decode(randId()));
    notes.checkLogits('decode', logits);
    log(`decode warm-up ${i + 1}: ${(dt * 1000).toFixed(1)} ms`);
  }
  const decodeTimes: number[] = [];
  for (let spent = 0; decodeTimes.length < P.decode.maxSteps && (decodeTimes.length < P.decode.minSteps || spent < P.decode.budgetS); ) {
    const [dt, logits] = await timeIt(() => model.decode(randId()));
    notes.checkLogits('decode', logits);
    decodeTimes.push(dt);
    spent += dt;
  }
  const decodeS = median(decodeTimes);
  const decode_tok_s = 1 / decodeS;
  const dispatches = model.dispatchesPerLayerToken;
  const weights_gb_s = (matrixBytes * decode_tok_s) / 1e9;
  log(`decode: median ${(decodeS * 1000).toFixed(1)} ms over ${decodeTimes.length} steps → ${decode_tok_s.toFixed(3)} tok/s, ${weights_gb_s.toFixed(3)} GB/s of weights; ${dispatches} dispatches per layer`);

  // Where a decoded token's time goes: each op of the decode list run REPEAT times in one submission (per-op time =
  // wall clock / REPEAT, so submission overhead is spread), summed over layers by op name (L<i>. prefix dropped).
  // Diagnostic only: ops in isolation, state and scratch left garbage (the prefill below resets).
  const REPEAT = P.quick ? 2 : 8;
  const opMs = new Map<string, number>();
  for (const op of model.opsForProfiling(1)) {
    const t0 = performance.now();
    submit(gpu, Array.from({ length: REPEAT }, () => op));
    await sync(gpu);
    const key = op.label.replace(/^L\d+\./, '');
    opMs.set(key, (opMs.get(key) ?? 0) + (performance.now() - t0) / REPEAT);
  }
  const decodeOpsMs = Object.fromEntries([...opMs].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, round(v, 3)]));
  log(`decode ops (ms per token, by op over all layers): ${JSON.stringify(decodeOpsMs)}`);
  model.reset();
  notes.add('details.decode_ops_ms: each op of one decoded token run alone (repeated in one submission), summed over layers by name: where the time goes, not a second decode measurement');

  // ---- 3. Real-shape model: prefill ----
  const imageRow = () => {
    const r = new Float32Array(C);
    for (let j = 0; j < C; j++) r[j] = (rand() * 2 - 1) * 1.7; // uniform, ≈ unit variance
    return r;
  };
  const makePrompt = (s: { textIds: number; imageRows: number }): InputRow[] => [
    ...Array.from({ length: s.textIds }, randId),
    ...Array.from({ length: s.imageRows }, imageRow),
  ];
  // Up to 65% of what is left after a minimum for the flat test (which stops short of 16384 if it must, and says so).
  const prefillBudget = Math.max(20, 0.65 * (left() - 60));
  const prefillStart = now();
  // The warm-up compiles the prefill pipelines (chunked WKV, tiled matmul) and, timed, bounds the cost per row from
  // above (it includes the compiles). It is one 64-row matmul tile long: tiled kernels cost about as much for 8 rows
  // as for 64, so a shorter probe would overestimate the per-row cost of a long prompt several-fold.
  const PROBE = 64;
  model.reset();
  const [probeS, probeLogits] = await timeIt(() => model.prefill(makePrompt({ textIds: PROBE / 2, imageRows: PROBE / 2 })));
  notes.checkLogits('prefill', probeLogits);
  log(`prefill warm-up (${PROBE} rows, pipelines compiled on the way): ${probeS.toFixed(2)}s`);
  let perRow = probeS / PROBE;
  const fullRows = P.prefill.textIds + P.prefill.imageRows;
  let budgetLeft = prefillBudget - (now() - prefillStart);
  if (fullRows * perRow > budgetLeft && probeS < 0.25 * budgetLeft) {
    // The first probe's cost is mostly pipeline compiles on a CPU-emulated adapter: a second one (compiled) says
    // what a row really costs before the full prompt is given up.
    model.reset();
    const [again, logits] = await timeIt(() => model.prefill(makePrompt({ textIds: PROBE / 2, imageRows: PROBE / 2 })));
    notes.checkLogits('prefill', logits);
    log(`prefill probe again (compiled): ${again.toFixed(2)}s = ${((again / PROBE) * 1000).toFixed(1)} ms/row`);
    perRow = again / PROBE;
    budgetLeft = prefillBudget - (now() - prefillStart);
  }
  let rows = fullRows;
  if (fullRows * perRow > budgetLeft) {
    // Whole 64-row tiles, at least one.
    rows = Math.max(PROBE, Math.floor((0.8 * budgetLeft) / perRow / PROBE) * PROBE);
    rows = Math.min(rows, fullRows);
    notes.add(
      `prefill: the ${fullRows}-row prompt would take up to ≈ ${(fullRows * perRow).toFixed(0)}s on this adapter (probe ${(perRow * 1000).toFixed(0)} ms/row); ` +
        `timed a ${rows}-row prompt with the same text/image mix instead (prefill_rows)`,
    );
  }
  log(`prefill estimate ${(perRow * 1000).toFixed(1)} ms/row → prompt of ${rows} rows (budget left ${budgetLeft.toFixed(0)}s)`);
  const shape = promptShape(rows, P);
  const prompt = makePrompt(shape);
  const prefillTimes: number[] = [];
  while (prefillTimes.length < P.prefill.maxRuns) {
    if (prefillTimes.length > 0 && now() - prefillStart + median(prefillTimes) > prefillBudget) break;
    model.reset();
    const [dt, logits] = await timeIt(() => model.prefill(prompt));
    notes.checkLogits('prefill', logits);
    prefillTimes.push(dt);
    log(`prefill ${prompt.length} rows: ${dt.toFixed(2)}s (${(prompt.length / dt).toFixed(2)} tok/s)`);
  }
  const prefill_tok_s = prompt.length / median(prefillTimes);
  model.destroy();

  // ---- 4. Flatness: decode cost at two positions of a small model ----
  const fshapes = rwkv6Shapes(P.flat);
  const fmodel = await RwkvModel.load(gpu, await syntheticRwkv6Checkpoint(P.flat), { maxRows: P.flat.maxRows });
  const fId = () => Math.floor(rand() * fshapes.V);
  const [p0, p1] = P.flat.positions;
  fmodel.reset();
  let pos = 0;
  let rowCost = 0; // seconds per prefilled row, from the last chunk
  /** Prefill random ids in chunks of maxRows (each awaited: its logits force completion). */
  const advance = async (n: number) => {
    const [dt, logits] = await timeIt(() => fmodel.prefill(Array.from({ length: n }, fId)));
    notes.checkLogits('flat-model prefill', logits);
    pos += n;
    rowCost = dt / n;
    log(`flat model: prefilled ${n} ids to position ${pos} in ${dt.toFixed(1)}s (${(rowCost * 1000).toFixed(1)} ms/row)`);
  };
  while (pos < p0) await advance(Math.min(P.flat.maxRows, p0 - pos));
  const snap0 = fmodel.state.snapshot('bench.near');
  // Decode from a restored snapshot: every timed step runs at exactly its position.
  const stepAt = async (snap: typeof snap0): Promise<number> => {
    fmodel.state.copyFrom(snap);
    await sync(gpu); // the copy is outside the timed region
    const [dt, logits] = await timeIt(() => fmodel.decode(fId()));
    notes.checkLogits('flat-model decode', logits);
    return dt;
  };
  const warm: number[] = [];
  for (let i = 0; i < P.flat.warmup; i++) warm.push(await stepAt(snap0));
  // Reserve time for the timed steps at both positions (+50 %) and a margin for the report.
  const reserve = 1.5 * 2 * P.flat.steps * (warm[warm.length - 1]! + 0.01) + 5;
  while (pos < p1) {
    const n = Math.min(P.flat.maxRows, p1 - pos);
    if (now() + n * rowCost * 1.2 + reserve > deadline) {
      notes.add(`flat: stopped prefilling at position ${pos} of ${p1} to stay within the ${P.budgetS}s budget (${(rowCost * 1000).toFixed(1)} ms/row); decode_ms_far is at flat_far_position`);
      break;
    }
    await advance(n);
  }
  const far = pos;
  const snap1 = fmodel.state.snapshot('bench.far');
  await stepAt(snap1); // warm (same pipelines; first touch of the snapshot)
  const at0: number[] = [];
  const at1: number[] = [];
  for (let i = 0; i < P.flat.steps; i++) {
    // Interleave the two positions so both see the same machine load.
    if (i % 2 === 0) {
      at0.push(await stepAt(snap0));
      at1.push(await stepAt(snap1));
    } else {
      at1.push(await stepAt(snap1));
      at0.push(await stepAt(snap0));
    }
  }
  const msNear = median(at0) * 1000;
  const msFar = median(at1) * 1000;
  log(`flat model: decode at ${p0}: median ${msNear.toFixed(2)} ms; at ${far}: ${msFar.toFixed(2)} ms`);
  snap0.destroy();
  snap1.destroy();
  fmodel.destroy();

  if (/swiftshader/i.test(adapter)) {
    notes.add('SwiftShader is a CPU emulation of Vulkan: absolute numbers say nothing about a GPU; only ratios measured in this run mean anything');
  }
  if (P.quick) notes.add(`--quick: tiny shapes everywhere, flat positions ${p0} and ${p1}; numbers are only a smoke test`);
  notes.add('wall clock around awaited calls that read logits back (forces completion); pipelines warmed up first; medians');
  notes.add('weights_gb_s counts the 16-bit matrices of all layers (incl. LoRA) and the head; the embedding row and f32 vectors are left out');
  notes.add(
    `read_gb_s: best of ${rb.all.length} configs (vec4/u32 loads; grid-stride, per-workgroup-block and per-thread-run patterns; workgroup size; thread count` +
      `${P.read.largeSize ? `; all at ${P.read.size >> 20} MiB, the best two again at ${P.read.largeSize >> 20} MiB` : ''}), median of ${P.read.trials} trials each`,
  );
  notes.add(`prefill: ${P.main.maxRows} rows per segment, a ${PROBE}-row warm-up first, ${prefillTimes.length} timed run(s)`);
  notes.add('flat: state snapshots at both positions restored before every step (copy synced outside the timed region); positions interleaved');
  notes.add(`elapsed ${now().toFixed(0)}s of the ${P.budgetS}s budget`);

  return {
    adapter,
    decode_tok_s: round(decode_tok_s),
    weights_gb_s: round(weights_gb_s),
    read_gb_s: round(read_gb_s),
    roofline_ratio: round(weights_gb_s / read_gb_s),
    dispatches_per_layer_token: dispatches,
    prefill_tok_s: round(prefill_tok_s),
    prefill_rows: prompt.length,
    prefill_decode_ratio: round(prefill_tok_s / decode_tok_s),
    decode_ms_at_512: p0 === 512 ? round(msNear) : null,
    decode_ms_at_16384: far === 16384 ? round(msFar) : null,
    decode_ms_near: round(msNear),
    flat_near_position: p0,
    decode_ms_far: round(msFar),
    flat_far_position: far,
    flat_ratio: round(msFar / msNear),
    config: {
      model: { ...shapes, dtype: 'BF16', max_rows: P.main.maxRows, matrix_bytes_per_token: matrixBytes, seed: P.seed },
      decode: { warmup_steps: P.decode.warmup, timed_steps: decodeTimes.length },
      prefill: { text_ids: shape.textIds, image_rows: shape.imageRows, full_prompt_rows: fullRows, bidirectional: false, runs: prefillTimes.length },
      flat_model: { ...fshapes, dtype: 'BF16', max_rows: P.flat.maxRows, positions: [p0, far], target_positions: P.flat.positions, steps: P.flat.steps, warmup_steps: P.flat.warmup },
      features: gpu.features,
      budget_s: P.budgetS,
    },
    notes: notes.list,
    details: {
      load_s: round(loadS),
      decode_ms: decodeTimes.map((t) => round(t * 1000)),
      decode_ops_ms: decodeOpsMs,
      prefill_warmup_ms_per_row: round(perRow * 1000),
      prefill_s: prefillTimes.map((t) => round(t)),
      flat_prefill_ms_per_row: round(rowCost * 1000),
      flat_decode_ms: { [p0]: at0.map((t) => round(t * 1000)), [far]: at1.map((t) => round(t * 1000)) },
      read_top: rb.all.slice(0, 5).map((r) => ({ ...r, gb_s: round(r.gb_s) })),
      elapsed_s: round(now()),
    },
  };
}

/** Entry point used by bin/bench.mjs; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  let quick = false;
  let seed = 1;
  let budget = 540;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = argv[i + 1];
    if (a === '--quick') quick = true;
    else if (a === '--seed' && next !== undefined && /^\d+$/.test(next)) seed = Number(argv[++i]);
    else if (a === '--budget' && next !== undefined && /^\d+(\.\d+)?$/.test(next) && Number(next) > 0) budget = Number(argv[++i]);
    else if (a === '--help' || a === '-h') {
      process.stdout.write(USAGE);
      return 0;
    } else {
      process.stderr.write(`bench: unknown or invalid argument '${a}'\n${USAGE}`);
      return 2;
    }
  }
  let gpu: Gpu | undefined;
  try {
    gpu = await createNodeGpu();
    const result = await run(gpu, plan(quick, seed, budget));
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    log('done');
    return 0;
  } catch (e) {
    process.stderr.write(`bench: ${(e as Error)?.stack ?? e}\n`);
    return 1;
  } finally {
    releaseNodeGpu(gpu);
  }
}
