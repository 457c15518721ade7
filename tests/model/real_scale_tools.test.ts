/**
 * The real-scale tools of scripts/ (run by hand on full-size checkpoints, see README "Checking a model at real scale")
 * on a small shape, so they keep working: synthetic-pth writes a released-format VisualRWKV-6 or RWKV-7 `.pth`
 * streaming (RWKV-7: the VisualRWKV-7.00 layout and a bare base model in the released key order), the CLI runs it,
 * check-real-scale compares the CLI's result with the float64 reference on the same weights — and fails when the
 * weights are not the generator's or the logits are off.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { main as checkRealScale } from '../../scripts/check-real-scale';
import { PRESETS7, rwkv7LoraRanks, writeSyntheticPth, type SyntheticPthOptions } from '../../scripts/synthetic-pth';
import { toF32 } from '../../src/weights/dtype';
import { parseSafetensors, writeSafetensors } from '../../src/weights/safetensors';
import { runCli } from '../helpers/cli';

const dir = mkdtempSync(join(tmpdir(), 'visualrwkv-real-scale-'));
const model = join(dir, 'VisualRWKV-synthetic.pth');
const result = join(dir, 'out.safetensors');
const IDS = '24281,59,33,11,300';

/** Run check-real-scale in-process; its JSON report (stdout) and exit code. */
async function check(args: string[]): Promise<{ code: number; report: Record<string, unknown> | null }> {
  let out = '';
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => {
    out += String(s);
    return true;
  });
  const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    const code = await checkRealScale(args);
    return { code, report: out.trim() ? (JSON.parse(out) as Record<string, unknown>) : null };
  } finally {
    spy.mockRestore();
    err.mockRestore();
  }
}

/** A copy of a `run --out` result with one prefill logit moved by +0.01. */
function perturbed(path: string, out: string): string {
  const t = parseSafetensors(new Uint8Array(readFileSync(path)));
  const logits = Float32Array.from(toF32(t.get('prefill_logits_last')!));
  logits[17]! += 0.01;
  const entries: Parameters<typeof writeSafetensors>[0] = {};
  for (const [k, v] of t) entries[k] = { dtype: v.dtype, shape: [...v.shape], data: k === 'prefill_logits_last' ? logits : v.bytes };
  writeFileSync(out, writeSafetensors(entries));
  return out;
}

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('real-scale tools (small shape)', () => {
  it('synthetic-pth → visualrwkv run → check-real-scale agrees with the float64 reference', async () => {
    const w = await writeSyntheticPth({ L: 2, C: 128, V: 65536, vit: false, seed: 3, out: model });
    expect(w.fileBytes).toBeGreaterThan(w.tensorBytes);
    const r = runCli(['run', '--model', model, '--ids', IDS, '--max-tokens', '3', '--out', result]);
    expect(r.status, r.stderr).toBe(0);
    const { code, report } = await check(['--model', model, '--result', result, '--ids', IDS, '--seed', '3']);
    expect(code).toBe(0);
    expect(report).toMatchObject({ ok: true, ids_match: true, engine_logits_finite: true });
    expect(report!.worst_max_abs_diff as number).toBeLessThan(1e-4);
    expect((report!.engine_ids as number[]).length).toBe(3);
  });

  it('fails on weights that are not the generator’s (wrong seed) and on perturbed logits', async () => {
    expect((await check(['--model', model, '--result', result, '--ids', IDS, '--seed', '4'])).code).toBe(1);

    const bad = perturbed(result, join(dir, 'bad.safetensors'));
    const { code, report } = await check(['--model', model, '--result', bad, '--ids', IDS]);
    expect(code).toBe(1);
    expect(report).toMatchObject({ ok: false });
    expect(report!.prefill_max_abs_diff as number).toBeGreaterThan(0.009);
  });
});

describe('real-scale tools, RWKV-7 (small shape)', () => {
  it('the RWKV-7 presets carry the released LoRA ranks (official suggestion formulas, spec §2.6)', () => {
    for (const p of Object.values(PRESETS7)) expect({ R_w: p.R_w, R_a: p.R_a, R_v: p.R_v, R_g: p.R_g }).toEqual(rwkv7LoraRanks(p.C));
    expect(rwkv7LoraRanks(2048)).toEqual({ R_w: 96, R_a: 96, R_v: 64, R_g: 256 });
  });

  const cases: [string, Omit<SyntheticPthOptions, 'out'>][] = [
    ['VisualRWKV-7 layout (rwkv. + v7 projector)', { arch: 'rwkv7', layout: 'visualrwkv', L: 2, C: 64, H: 2, V: 65536, R_w: 16, R_a: 16, R_v: 8, R_g: 16, D: 48, vit: false, seed: 5 }],
    ['bare RWKV-7, released key order with blocks.0.att.v0/v1/v2', { arch: 'rwkv7', layout: 'released', L: 2, C: 64, H: 2, V: 65536, seed: 6 }],
  ];
  it.each(cases)('%s: synthetic-pth → visualrwkv run → check-real-scale, and a perturbed result fails', async (name, o) => {
    const m = join(dir, `rwkv7-${o.layout}.pth`);
    const res = join(dir, `rwkv7-${o.layout}.safetensors`);
    const w = await writeSyntheticPth({ ...o, out: m });
    expect([w.arch, w.layout]).toEqual(['rwkv7', o.layout]);
    const r = runCli(['run', '--model', m, '--ids', IDS, '--max-tokens', '3', '--out', res]);
    expect(r.status, r.stderr).toBe(0);
    const seed = String(o.seed);
    const { code, report } = await check(['--model', m, '--result', res, '--ids', IDS, '--seed', seed]);
    expect(code, JSON.stringify(report)).toBe(0);
    expect(report).toMatchObject({
      ok: true, ids_match: true, engine_logits_finite: true, arch: 'rwkv7', lm_prefix: o.layout === 'visualrwkv' ? 'rwkv.' : '',
      bytes_verified_against_generator: true, key_order_verified_against_generator: true,
    });
    expect(report!.config).toMatchObject({ arch: 7, L: 2, C: 64, H: 2, V: 65536 });
    expect(report!.worst_max_abs_diff as number).toBeLessThan(1e-4);
    console.log(`${name}: max |Δ logit| ${(report!.worst_max_abs_diff as number).toExponential(2)}`);

    expect((await check(['--model', m, '--result', res, '--ids', IDS, '--seed', String(o.seed! + 1)])).code).toBe(1);
    const bad = await check(['--model', m, '--result', perturbed(res, join(dir, `bad-${o.layout}.safetensors`)), '--ids', IDS]);
    expect(bad.code).toBe(1);
    expect(bad.report).toMatchObject({ ok: false });
    expect(bad.report!.prefill_max_abs_diff as number).toBeGreaterThan(0.009);
  });
});
