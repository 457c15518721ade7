/**
 * `npm run bench` (bin/bench.mjs) in its --quick form: a smoke test of the benchmark's output, not a speed test —
 * nothing here depends on how fast the adapter is. It checks that the one JSON object on stdout has every key the
 * engine-core issue names, with finite positive numbers, and that the derived keys agree with the measured ones
 * (roofline_ratio = weights_gb_s / read_gb_s, prefill_decode_ratio = prefill_tok_s / decode_tok_s, flat_ratio =
 * decode_ms_far / decode_ms_near), plus the per-op decode breakdown.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The JSON rounds to 4 significant digits; ratios of rounded values agree to about 1e-3 relative. */
const ROUND_REL = 2e-3;

function near(a: number, b: number): void {
  expect(Math.abs(a - b)).toBeLessThanOrEqual(ROUND_REL * Math.max(Math.abs(a), Math.abs(b)));
}

describe('bench --quick', () => {
  it('prints one JSON object with every issue key, consistent ratios and the decode breakdown', () => {
    expect(existsSync(ROOT + 'dist/node/bench.js'), 'run `npm run build:node` (npm test does)').toBe(true);
    const r = spawnSync(process.execPath, [ROOT + 'bin/bench.mjs', '--quick'], { cwd: ROOT, encoding: 'utf8', timeout: 300_000 });
    expect(r.status, r.stderr).toBe(0);
    const d = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(typeof d.adapter).toBe('string');
    expect((d.adapter as string).length).toBeGreaterThan(0);
    const keys = [
      'decode_tok_s', 'weights_gb_s', 'read_gb_s', 'roofline_ratio', 'dispatches_per_layer_token', 'prefill_tok_s',
      'prefill_decode_ratio', 'decode_ms_near', 'decode_ms_far', 'flat_ratio',
    ] as const;
    const n: Record<string, number> = {};
    for (const k of keys) {
      expect(typeof d[k], k).toBe('number');
      n[k] = d[k] as number;
      expect(Number.isFinite(n[k]) && n[k] > 0, `${k} = ${n[k]}`).toBe(true);
    }
    expect(n.dispatches_per_layer_token).toBe(8);
    near(n.roofline_ratio!, n.weights_gb_s! / n.read_gb_s!);
    near(n.prefill_decode_ratio!, n.prefill_tok_s! / n.decode_tok_s!);
    // --quick decodes the flat model at 64 and 512: the 512 / 16384 keys are there, null (not mislabelled values).
    expect([d.flat_near_position, d.flat_far_position]).toEqual([64, 512]);
    expect(d).toHaveProperty('decode_ms_at_512', null);
    expect(d).toHaveProperty('decode_ms_at_16384', null);
    near(n.flat_ratio!, n.decode_ms_far! / n.decode_ms_near!);
    const details = d.details as { decode_ops_ms: Record<string, number> };
    const ops = Object.entries(details.decode_ops_ms);
    expect(ops.map(([k]) => k)).toEqual(expect.arrayContaining(['head', 'ffn.value', 'att.ddlerp', 'att.output']));
    for (const [k, ms] of ops) expect(Number.isFinite(ms) && ms > 0, `${k}: ${ms}`).toBe(true);
    expect(Array.isArray(d.notes)).toBe(true);
  }, 300_000);
});
