/**
 * The real-scale tools of scripts/ (run by hand on full-size checkpoints, see README "Checking a model at real scale")
 * on a small shape, so they keep working: synthetic-pth writes a released-format VisualRWKV-6 `.pth` streaming, the
 * CLI runs it, check-real-scale compares the CLI's result with the float64 reference on the same weights — and fails
 * when the weights are not the generator's or the logits are off.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { main as checkRealScale } from '../../scripts/check-real-scale';
import { writeSyntheticPth } from '../../scripts/synthetic-pth';
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

describe('real-scale tools (small shape)', () => {
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

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

    const t = parseSafetensors(new Uint8Array(readFileSync(result)));
    const logits = Float32Array.from(toF32(t.get('prefill_logits_last')!));
    logits[17]! += 0.01;
    const bad = join(dir, 'bad.safetensors');
    const entries: Parameters<typeof writeSafetensors>[0] = {};
    for (const [k, v] of t) entries[k] = { dtype: v.dtype, shape: [...v.shape], data: k === 'prefill_logits_last' ? logits : v.bytes };
    writeFileSync(bad, writeSafetensors(entries));
    const { code, report } = await check(['--model', model, '--result', bad, '--ids', IDS]);
    expect(code).toBe(1);
    expect(report).toMatchObject({ ok: false });
    expect(report!.prefill_max_abs_diff as number).toBeGreaterThan(0.009);
  });
});
