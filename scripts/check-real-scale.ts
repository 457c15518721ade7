/**
 * Real-scale correctness check: the CLI's result on a (synthetic, full-size) VisualRWKV-6 or -7 `.pth` — or a bare
 * RWKV-6/7 LM — against the float64 CPU reference of tests/reference on the SAME weights, read back from the `.pth`
 * with the engine's own reader (src/weights). Too slow for CI (a 1B6 model in float64 is ~13 GB of RAM and ~2
 * minutes of CPU), hence a tool.
 *
 *   1. open the checkpoint (zip directory + data.pkl only); tell the architecture (att.time_faaaa → RWKV-6,
 *      att.r_k → RWKV-7) and the LM keys (`rwkv.*` in a VisualRWKV file; everything but vit.* / proj.* in a bare
 *      one); count what the engine skips (vit.*)
 *   2. read every LM tensor once, one at a time (peak RSS of this pass = the reader's footprint); with --seed,
 *      check each against the synthetic-pth generator byte for byte (the writer's round trip): bench/synthetic.ts
 *      for RWKV-6, tests/helpers/synthetic7.ts for RWKV-7 (whose key order — VisualRWKV-v7 with the `rwkv.` prefix,
 *      the released order when bare — is checked too)
 *   3. build the float64 reference model (LM only) and run refGenerate (greedy, zero state) on --ids
 *   4. compare with `visualrwkv run --out` (prefill_logits_last, gen_logits, gen_ids): max |Δ logit| per step,
 *      greedy ids, and the reference's top-2 gap per step (how safe the id comparison is)
 * With --finite-only (shapes whose float64 model does not fit in RAM, e.g. 7B ≈ 61 GB) step 3 is skipped, step 2
 * runs only with --seed, and the result is only checked for finite logits.
 *
 * Usage (after `npm run build:tools`):
 *   node scripts/tool.mjs check-real-scale --model /tmp/big/m.pth --result /tmp/big/out.safetensors
 *        --ids 24281,59,33,11,300 [--seed 1] [--tol 1e-3] [--finite-only]
 * Prints one JSON object on stdout (progress on stderr); exit code 1 if a check fails.
 * Token ids only (no -200 image placeholder): the check is about the LM at scale.
 */
import { readFile } from 'node:fs/promises';
import { nodeFileSource } from '../src/weights/node-source';
import { openCheckpoint, type Checkpoint } from '../src/weights/checkpoint';
import { parseSafetensors } from '../src/weights/safetensors';
import { toF32, toI32 } from '../src/weights/dtype';
import { generateBf16, rwkv6Shapes, rwkv6TensorSpecs, type SyntheticTensorSpec } from '../bench/synthetic';
import { referenceModelFrom, refTensorsFrom, refGenerate, type RefTensor } from '../tests/reference/model';
import { top2Gap } from '../tests/reference/common';
import { maxAbsDiff } from '../tests/helpers/diff';
import { rwkv7Shapes, rwkv7TensorSpecs } from '../tests/helpers/synthetic7';
import { parseOptions } from './synthetic-pth';

const USAGE = `usage: node scripts/tool.mjs check-real-scale --model <file.pth> --result <run-out.safetensors> --ids <csv>
       [--seed N  (also verify the LM bytes against the synthetic-pth generator)] [--tol T (default 1e-3)]
       [--finite-only  (no float64 reference: only check that the logits are finite)]
`;

type Report = Record<string, unknown>;

const log = (s: string) => process.stderr.write(`check-real-scale: ${s}\n`);
const peakRssBytes = () => process.resourceUsage().maxRSS * 1024;
const gb = (n: number) => (n / 1e9).toFixed(3);

/** Which keys of a checkpoint are the language model (spec §2.6): `rwkv.*` if present, else all but vit.* / proj.*. */
interface LmView {
  arch: 'rwkv6' | 'rwkv7';
  /** 'rwkv.' (VisualRWKV layout) or '' (bare LM). */
  prefix: string;
  isLm: (k: string) => boolean;
}

function lmView(ckpt: Checkpoint): LmView {
  const prefix = ckpt.tensors.has('rwkv.emb.weight') ? 'rwkv.' : '';
  if (!ckpt.tensors.has(`${prefix}emb.weight`)) throw new Error(`${ckpt.name}: no rwkv.emb.weight / emb.weight: not an RWKV checkpoint`);
  const arch = ckpt.tensors.has(`${prefix}blocks.0.att.time_faaaa`) ? 'rwkv6' : ckpt.tensors.has(`${prefix}blocks.0.att.r_k`) ? 'rwkv7' : null;
  if (!arch) throw new Error(`${ckpt.name}: neither ${prefix}blocks.0.att.time_faaaa (RWKV-6) nor ${prefix}blocks.0.att.r_k (RWKV-7)`);
  const isLm = prefix ? (k: string) => k.startsWith(prefix) : (k: string) => !k.startsWith('vit.') && !k.startsWith('proj.');
  return { arch, prefix, isLm };
}

/**
 * The generator's tensor specs for this checkpoint's shapes, by full key, in the generator's key order (to verify
 * bytes and, for RWKV-7, the layout's key order).
 */
function generatorSpecs(ckpt: Checkpoint, view: LmView): Map<string, SyntheticTensorSpec> {
  const { prefix } = view;
  const shape = (k: string) => ckpt.tensors.get(prefix + k)?.shape ?? [];
  const [V, C] = shape('emb.weight');
  const L = [...ckpt.tensors.keys()].filter((k) => k.startsWith(prefix) && /^blocks\.\d+\.ln1\.weight$/.test(k.slice(prefix.length))).length;
  if (view.arch === 'rwkv7') {
    // VisualRWKV-7 files (prefixed) are written in the 'visualrwkv' layout, bare ones in the 'released' layout
    const layout = prefix ? 'visualrwkv' : 'released';
    const shapes = rwkv7Shapes({
      L, C: C!, V: V!, H: shape('blocks.0.att.r_k')[0],
      F: shape('blocks.0.ffn.key.weight')[0],
      R_w: shape('blocks.0.att.w1')[1],
      R_a: shape('blocks.0.att.a1')[1],
      R_v: shape(layout === 'released' ? 'blocks.0.att.v1' : 'blocks.1.att.v1')[1],
      R_g: shape('blocks.0.att.g1')[1],
    });
    return new Map(rwkv7TensorSpecs(shapes, layout).map((s) => [prefix + s.name, s]));
  }
  const shapes = rwkv6Shapes({
    L, C: C!, V: V!, H: shape('blocks.0.att.time_faaaa')[0],
    F: shape('blocks.0.ffn.key.weight')[0],
    R_m: shape('blocks.0.att.time_maa_w2')[1],
    R_d: shape('blocks.0.att.time_decay_w1')[1],
  });
  return new Map(rwkv6TensorSpecs(shapes).map((s) => [prefix + s.name, s]));
}

/** Name of the RWKV-7 key order a file of this view is written in. */
const prefixedLayout = (view: LmView) => (view.prefix ? 'VisualRWKV-v7' : 'released');

/** Step 2: every LM tensor read once and dropped; with a seed, compared with the generator's bytes (and key order). */
async function readPass(ckpt: Checkpoint, view: LmView, seed: number | undefined, report: Report): Promise<void> {
  const t0 = performance.now();
  const specs = seed === undefined ? null : generatorSpecs(ckpt, view);
  const lmKeys = [...ckpt.tensors.keys()].filter(view.isLm);
  if (specs) {
    const want = [...specs.keys()];
    const missing = want.filter((k) => !ckpt.tensors.has(k));
    if (missing.length) throw new Error(`${missing.length} tensors of the synthetic generator missing, e.g. ${missing[0]}`);
    if (view.arch === 'rwkv7') {
      const i = want.findIndex((k, j) => lmKeys[j] !== k);
      if (i >= 0) throw new Error(`key ${i} is ${lmKeys[i]}, the generator's ${prefixedLayout(view)} order has ${want[i]}`);
      report.key_order_verified_against_generator = true;
    }
  }
  for (const k of lmKeys) {
    const t = await ckpt.tensors.get(k)!.read();
    if (!specs) continue;
    const spec = specs.get(k);
    if (!spec) throw new Error(`${k}: not a tensor of the synthetic generator`);
    const want = generateBf16(spec, seed!);
    const got = new Uint16Array(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength / 2);
    if (got.length !== want.length || got.some((v, i) => v !== want[i])) throw new Error(`${k}: bytes differ from the generator (seed ${seed})`);
  }
  report.bytes_verified_against_generator = specs !== null;
  report.read_pass_s = Number(((performance.now() - t0) / 1000).toFixed(1));
  report.read_pass_peak_rss_bytes = peakRssBytes();
  log(`read every LM tensor once${specs ? ' (bytes = generator)' : ''}: peak RSS ${gb(peakRssBytes())} GB (${report.read_pass_s} s)`);
}

/** Steps 1–3. Returns the float64 LM tensors (`rwkv.` stripped), or null with `withReference` false. */
async function readCheckpoint(path: string, seed: number | undefined, withReference: boolean, report: Report): Promise<Map<string, RefTensor> | null> {
  const src = await nodeFileSource(path);
  try {
    const ckpt = await openCheckpoint(src);
    const view = lmView(ckpt);
    const { isLm } = view;
    const keys = [...ckpt.tensors.keys()];
    const bytesOf = (pred: (k: string) => boolean) => keys.filter(pred).reduce((n, k) => n + ckpt.tensors.get(k)!.byteLength, 0);
    const isVit = (k: string) => k.startsWith('vit.');
    Object.assign(report, {
      file_bytes: src.size,
      arch: view.arch,
      lm_prefix: view.prefix,
      tensors: keys.length,
      lm_tensors: keys.filter(isLm).length,
      lm_bytes: bytesOf(isLm),
      skipped_vit_tensors: keys.filter(isVit).length,
      skipped_vit_bytes: bytesOf(isVit),
      proj_shape: ckpt.tensors.get('proj.weight')?.shape ?? null,
    });
    const proj = keys.filter((k) => k.startsWith('proj.') && k !== 'proj.weight');
    if (proj.length) report.proj_shapes = Object.fromEntries(proj.map((k) => [k, ckpt.tensors.get(k)!.shape]));
    log(`opened ${src.name}: ${keys.length} tensors, ${gb(src.size)} GB, ${view.arch}${view.prefix ? ' (rwkv.*)' : ' (bare LM)'}`);
    if (withReference || seed !== undefined) await readPass(ckpt, view, seed, report);
    if (!withReference) return null;
    const t0 = performance.now();
    const out = new Map<string, RefTensor>();
    for (const k of keys.filter(isLm)) {
      for (const [name, t] of refTensorsFrom(new Map([[k, await ckpt.tensors.get(k)!.read()]]))) out.set(name, t);
    }
    report.reference_build_s = Number(((performance.now() - t0) / 1000).toFixed(1));
    return out;
  } finally {
    await src.close();
  }
}

/** The CLI's `run --out` file. */
async function readResult(path: string): Promise<{ prefill: Float32Array; ids: number[]; logits: Float32Array; V: number }> {
  const res = parseSafetensors(new Uint8Array(await readFile(path)), path);
  const need = (n: string) => {
    const t = res.get(n);
    if (!t) throw new Error(`${path}: no tensor ${n}`);
    return t;
  };
  const prefill = toF32(need('prefill_logits_last'));
  return { prefill, ids: [...toI32(need('gen_ids'))], logits: toF32(need('gen_logits')), V: prefill.length };
}

export async function main(argv: string[]): Promise<number> {
  try {
    return await run(argv);
  } catch (e) {
    process.stderr.write(`check-real-scale: FAILED: ${(e as Error).message}\n`);
    return 1;
  }
}

async function run(argv: string[]): Promise<number> {
  if (argv.includes('--help')) {
    process.stdout.write(USAGE);
    return 0;
  }
  const finiteOnly = argv.includes('--finite-only');
  let opts: Map<string, string>;
  let ids: number[];
  try {
    opts = parseOptions(argv.filter((a) => a !== '--finite-only'), ['model', 'result', 'ids', 'seed', 'tol']);
    for (const k of ['model', 'result', 'ids']) if (!opts.has(k)) throw new Error(`--${k} is required`);
    ids = opts.get('ids')!.split(',').map((s) => Number(s.trim()));
    if (ids.some((x) => !Number.isInteger(x) || x < 0)) throw new Error('--ids: token ids only (non-negative integers)');
  } catch (e) {
    process.stderr.write(`check-real-scale: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  const seed = opts.has('seed') ? Number(opts.get('seed')) : undefined;
  const tol = Number(opts.get('tol') ?? '1e-3');
  const t0 = performance.now();
  const report: Report = { model: opts.get('model')!, result: opts.get('result')!, ids };

  const lm = await readCheckpoint(opts.get('model')!, seed, !finiteOnly, report);
  const got = await readResult(opts.get('result')!);
  const finite = got.prefill.every(Number.isFinite) && got.logits.every(Number.isFinite);
  Object.assign(report, { engine_ids: got.ids, engine_logits_finite: finite });

  if (lm) {
    const ref = referenceModelFrom(lm, 'real-scale');
    report.config = ref.config;
    log(`float64 reference built: ${JSON.stringify(ref.config)} (${report.reference_build_s} s)`);
    if (ref.config.V !== got.V) throw new Error(`result has V = ${got.V}, the checkpoint ${ref.config.V}`);
    const V = got.V;
    const tr = performance.now();
    const expected = refGenerate(ref, ids, { steps: got.ids.length });
    report.reference_generate_s = Number(((performance.now() - tr) / 1000).toFixed(1));
    log(`reference: ${ids.length} prefill rows + ${got.ids.length - 1} decode steps in ${report.reference_generate_s} s → ids ${expected.ids.join(',')}`);

    const prefillCmp = maxAbsDiff(got.prefill, expected.logits[0]!);
    const steps = expected.logits.map((l, i) => ({
      step: i,
      engine_id: got.ids[i],
      reference_id: expected.ids[i],
      max_abs_diff: maxAbsDiff(got.logits.subarray(i * V, (i + 1) * V), l).maxAbs,
      reference_top2_gap: top2Gap(l),
    }));
    const idsMatch = got.ids.length === expected.ids.length && got.ids.every((id, i) => id === expected.ids[i]);
    const worst = Math.max(prefillCmp.maxAbs, ...steps.map((s) => s.max_abs_diff));
    Object.assign(report, {
      reference_ids: expected.ids,
      ids_match: idsMatch,
      prefill_max_abs_diff: prefillCmp.maxAbs,
      prefill_max_abs_logit: expected.logits[0]!.reduce((m, v) => Math.max(m, Math.abs(v)), 0),
      steps,
      worst_max_abs_diff: worst,
      tolerance: tol,
      ok: finite && idsMatch && worst <= tol,
    });
  } else {
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of got.prefill) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
    Object.assign(report, { prefill_logit_range: [lo, hi], ok: finite });
  }
  report.total_s = Number(((performance.now() - t0) / 1000).toFixed(1));
  report.peak_rss_bytes = peakRssBytes();
  // one key per line, number arrays (ids, shapes, ranges) kept on one line
  const json = JSON.stringify(report, null, 1).replace(/\[\s+([-\d.,e+\s]+?)\s+\]/g, (_, inner: string) => `[${inner.replace(/\s+/g, '')}]`);
  process.stdout.write(json + '\n');
  return report.ok ? 0 : 1;
}
