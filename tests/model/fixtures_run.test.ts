/**
 * Every RWKV-6 and RWKV-7 golden case through `visualrwkv run` (the external interface the fixtures are checked with):
 * max |Δ logit| ≤ 1e-3 and identical greedy ids.
 */
import { describe, it, expect } from 'vitest';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/cli';
import { fixturePath, readJson, tensorF32, tensorI32 } from '../helpers/fixtures';
import { expectClose } from '../helpers/compare';
import { parseSafetensors } from '../../src/weights/safetensors';
import { toF32, toI32 } from '../../src/weights/dtype';

/** The acceptance tolerance for an f32 engine (MANIFEST §6: fp32 engines land ~1e-4, official fp32 ≤ 3.5e-5). */
const LOGIT_TOL = 1e-3;

const tmp = mkdtempSync(join(tmpdir(), 'vrwkv-cli-'));

/** The largest |Δ logit| of the running case (logged at its end, for the notes). */
let worst = 0;

/** expectClose at LOGIT_TOL, remembering the case's worst difference. */
function close(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  worst = Math.max(worst, expectClose(got, want, LOGIT_TOL, what).maxAbs);
}

function logCase(label: string): void {
  console.log(`[fixtures] ${label}: max |Δ logit| ${worst.toExponential(2)}, greedy ids identical`);
}

interface RunOut {
  prefill: Float32Array;
  ids: number[];
  logits: Float32Array; // (n, V)
}

function run(model: string, ids: number[], extra: string[], maxTokens: number, tag: string): RunOut {
  const out = join(tmp, `${tag}.safetensors`);
  const r = runCli(['run', '--model', fixturePath(model), '--ids', ids.join(','), '--max-tokens', String(maxTokens), '--out', out, '--quiet', ...extra]);
  expect(r.status, `CLI failed: ${r.stderr}`).toBe(0);
  const t = parseSafetensors(new Uint8Array(readFileSync(out)));
  return { prefill: toF32(t.get('prefill_logits_last')!), ids: Array.from(toI32(t.get('gen_ids')!)), logits: toF32(t.get('gen_logits')!) };
}

function row(all: Float32Array, i: number, V: number): Float32Array {
  return all.subarray(i * V, (i + 1) * V);
}

for (const modelName of ['rwkv6_tiny', 'rwkv6_vocab65536', 'rwkv7_tiny']) {
  const dir = `cases/${modelName}/`;
  const files = readdirSync(fixturePath(dir)).filter((f) => f.endsWith('.json'));
  // Every case from the released format (.pth); the .safetensors twin (byte-identical tensors, checked in the unit
  // tests) runs the text/decode cases only, to keep the suite's time in check.
  for (const checkpoint of ['visualrwkv.pth', 'visualrwkv.safetensors']) {
    const model = `models/${modelName}/${checkpoint}`;
    const all = checkpoint.endsWith('.pth');
    describe(`${modelName} (${checkpoint}) through visualrwkv run`, () => {
      for (const f of files.filter((f) => f.startsWith('decode_'))) {
        const c = readJson(dir + f);
        const st = dir + c.tensors_file;
        const textCase = dir + f.replace('decode_', 'text_').replace('.json', '.safetensors');
        it(`${c.label}: text prefill logits and greedy decode`, () => {
          worst = 0;
          const ids = Array.from(tensorI32(st, 'input_ids'));
          const want = c.gen_ids as number[];
          const res = run(model, ids, [], want.length, `${modelName}-${checkpoint}-${c.label}`);
          const V = res.prefill.length;
          close(res.prefill, tensorF32(textCase, 'logits_last'), 'prefill logits_last');
          expect(res.ids).toEqual(want);
          if (c.tensors.gen_logits) {
            close(res.logits, tensorF32(st, 'gen_logits'), 'gen_logits');
          } else {
            compareTop32(res.logits, st, V, want.length);
            close(row(res.logits, want.length - 1, V), tensorF32(st, 'gen_logits_laststep'), 'gen_logits last step');
          }
          logCase(`${modelName}/${c.label} (${checkpoint})`);
        });
      }
      // v7layout_first_pad16 reproduces the official eval's left-padding quirk, which the engine does not emulate.
      for (const f of files.filter((f) => all && (f.startsWith('visual_') || f.startsWith('e2e_image_') || f === 'v7layout_first_nopad.json'))) {
        const c = readJson(dir + f);
        const st = dir + c.tensors_file;
        it(`${c.label}: image rows spliced, bidirectional ${c.bidirectional ? 'on' : 'off'}`, () => {
          worst = 0;
          const ids = Array.from(tensorI32(st, 'input_ids'));
          const rows = c.image_rows.file ? `${fixturePath(dir + c.image_rows.file)}:${c.image_rows.tensor}` : `${fixturePath(st)}:image_rows`; // e2e/v7layout store their rows
          const want = c.gen_ids as number[];
          const res = run(model, ids, ['--image-rows', rows, '--bidirectional', c.bidirectional ? 'on' : 'off'], want.length, `${modelName}-${checkpoint}-${c.label}`);
          const V = res.prefill.length;
          expect(res.ids).toEqual(want);
          if (c.tensors.gen_logits) {
            close(res.prefill, tensorF32(st, 'prefill_logits_last'), 'prefill_logits_last');
            close(res.logits, tensorF32(st, 'gen_logits'), 'gen_logits');
          } else {
            close(res.prefill, tensorF32(st, 'gen_logits_step0'), 'prefill logits (gen_logits_step0)');
            compareTop32(res.logits, st, V, want.length);
            close(row(res.logits, want.length - 1, V), tensorF32(st, 'gen_logits_laststep'), 'gen_logits last step');
          }
          logCase(`${modelName}/${c.label} (${checkpoint})`);
        });
      }
    });
  }
}

/** Large-vocab cases store each step's top-32 ids and logits: compare those entries. */
function compareTop32(logits: Float32Array, st: string, V: number, n: number): void {
  const ids = tensorI32(st, 'gen_top32_ids');
  const vals = tensorF32(st, 'gen_top32_logits');
  const got = new Float32Array(ids.length);
  for (let s = 0; s < n; s++) for (let j = 0; j < 32; j++) got[s * 32 + j] = logits[s * V + ids[s * 32 + j]!]!;
  close(got, vals, 'gen top-32 logits');
}
