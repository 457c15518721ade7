/**
 * The CLI from the outside: hostile and broken checkpoints are refused with one line and a non-zero exit code;
 * tokenize/detokenize agree with the goldens.
 */
import { describe, it, expect } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/cli';
import { fixturePath, readJson } from '../helpers/fixtures';
import { PickleWriter, OP, pthWithPickle } from '../helpers/pickle';

const tmp = mkdtempSync(join(tmpdir(), 'vrwkv-cli-err-'));

function expectOneLineError(r: { status: number | null; stderr: string; stdout: string }, pattern: RegExp): void {
  expect(r.status).not.toBe(0);
  expect(r.status).not.toBeNull();
  const lines = r.stderr.trim().split('\n');
  expect(lines, `stderr: ${r.stderr}`).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace without --debug
}

function maliciousPth(module: string, name: string): string {
  const w = new PickleWriter().proto(2).global(module, name).str('echo pwned').op(OP.TUPLE1, OP.REDUCE, OP.STOP);
  const file = join(tmp, `${module}.${name}.pth`);
  writeFileSync(file, pthWithPickle(w.bytes()));
  return file;
}

describe('visualrwkv run refuses bad checkpoints', () => {
  for (const [m, n] of [['os', 'system'], ['builtins', 'eval'], ['posix', 'system']] as const) {
    it(`a .pth whose pickle names ${m}.${n} → UnsafePickleError, exit 1, one line`, () => {
      const r = runCli(['run', '--model', maliciousPth(m, n), '--ids', '1,2', '--out', join(tmp, 'x.safetensors')]);
      expectOneLineError(r, new RegExp(`UnsafePickleError.*${m}\\.${n}`));
      expect(r.status).toBe(1);
    });
  }

  it('a truncated .pth → WeightsFormatError', () => {
    const full = readFileSync(fixturePath('models/rwkv6_tiny/visualrwkv.pth'));
    const file = join(tmp, 'truncated.pth');
    writeFileSync(file, full.subarray(0, Math.floor(full.length * 0.6)));
    expectOneLineError(runCli(['run', '--model', file, '--ids', '1', '--out', join(tmp, 'x.safetensors')]), /WeightsFormatError/);
  });

  it('a truncated .safetensors → WeightsFormatError', () => {
    const full = readFileSync(fixturePath('models/rwkv6_tiny/visualrwkv.safetensors'));
    const file = join(tmp, 'truncated.safetensors');
    writeFileSync(file, full.subarray(0, full.length - 1000));
    expectOneLineError(runCli(['run', '--model', file, '--ids', '1', '--out', join(tmp, 'x.safetensors')]), /WeightsFormatError.*truncated/);
  });

  it('a corrupt file → WeightsFormatError; --debug adds the stack', () => {
    const file = join(tmp, 'garbage.pth');
    writeFileSync(file, new Uint8Array(4096).map((_, i) => (i * 7919) & 0xff));
    expectOneLineError(runCli(['run', '--model', file, '--ids', '1', '--out', join(tmp, 'x.safetensors')]), /WeightsFormatError/);
    const dbg = runCli(['run', '--model', file, '--ids', '1', '--out', join(tmp, 'x.safetensors'), '--debug']);
    expect(dbg.status).toBe(1);
    expect(dbg.stderr).toMatch(/\n\s+at /);
  });

  it('usage errors: missing file, bad ids, unknown flag, out-of-range id', () => {
    expectOneLineError(runCli(['run', '--model', join(tmp, 'nope.pth'), '--ids', '1', '--out', 'x']), /nope.pth.*(ENOENT|not found)/);
    expectOneLineError(runCli(['run', '--model', 'm', '--ids', '1,x', '--out', 'x']), /'x' is not an integer/);
    expectOneLineError(runCli(['run', '--modle', 'm']), /unknown option --modle/);
    const r = runCli(['run', '--model', fixturePath('models/rwkv6_tiny/visualrwkv.pth'), '--ids', '5000', '--out', join(tmp, 'x.safetensors'), '--quiet']);
    expectOneLineError(r, /InvalidArgumentError.*5000/);
  });
});

describe('visualrwkv run --model <url>', () => {
  it('reads a checkpoint over HTTP range requests, shows progress, and gives the same result as the file', async () => {
    const { createServer } = await import('node:http');
    const bytes = readFileSync(fixturePath('models/rwkv6_tiny/visualrwkv.pth'));
    let ranged = 0;
    const server = createServer((req, res) => {
      const m = /bytes=(\d+)-(\d*)/.exec(req.headers.range ?? '');
      if (!m) {
        res.writeHead(200, { 'Content-Length': bytes.length, 'Accept-Ranges': 'bytes' });
        res.end(req.method === 'HEAD' ? undefined : bytes);
        return;
      }
      ranged++;
      const a = Number(m[1]);
      const b = m[2] ? Number(m[2]) : bytes.length - 1;
      res.writeHead(206, { 'Content-Range': `bytes ${a}-${b}/${bytes.length}`, 'Content-Length': b - a + 1 });
      res.end(bytes.subarray(a, b + 1));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    try {
      const outUrl = join(tmp, 'url.safetensors');
      const outFile = join(tmp, 'file.safetensors');
      const { spawn } = await import('node:child_process');
      // spawn (not spawnSync): this process must keep serving while the CLI reads
      const runAsync = (args: string[]) =>
        new Promise<{ status: number | null; stderr: string }>((resolve) => {
          const p = spawn(process.execPath, ['bin/visualrwkv.mjs', ...args]);
          let stderr = '';
          p.stderr.on('data', (d) => (stderr += d));
          p.on('close', (status) => resolve({ status, stderr }));
        });
      const r1 = await runAsync(['run', '--model', `http://127.0.0.1:${port}/visualrwkv.pth`, '--ids', '1,2,3', '--max-tokens', '3', '--out', outUrl]);
      expect(r1.status, r1.stderr).toBe(0);
      expect(r1.stderr).toMatch(/\[#+\.*\] 100%/); // the progress bar reached the end
      expect(ranged).toBeGreaterThan(5); // tensor by tensor, never the whole file
      const r2 = await runAsync(['run', '--model', fixturePath('models/rwkv6_tiny/visualrwkv.pth'), '--ids', '1,2,3', '--max-tokens', '3', '--out', outFile, '--quiet']);
      expect(r2.status, r2.stderr).toBe(0);
      expect(readFileSync(outUrl).equals(readFileSync(outFile))).toBe(true);
    } finally {
      server.close();
    }
  });
});

describe('visualrwkv tokenize / detokenize', () => {
  const golden = readJson('tokenizer/tokenizer_golden.json');
  const entries = (golden.encode as { text: string; ids: number[] }[]);

  it('--jsonl gives the golden ids for every encode entry', () => {
    const file = join(tmp, 'texts.jsonl');
    writeFileSync(file, entries.map((e) => JSON.stringify(e.text)).join('\n') + '\n');
    const r = runCli(['tokenize', '--jsonl', file]);
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toEqual(entries.map((e) => e.ids));
  });

  it('--text-file and detokenize round-trip', () => {
    const e = entries.find((x) => /[\u4e00-\u9fff]/.test(x.text)) ?? entries[0]!;
    const file = join(tmp, 'text.txt');
    writeFileSync(file, e.text);
    const r = runCli(['tokenize', '--text-file', file]);
    expect(JSON.parse(r.stdout)).toEqual(e.ids);
    const d = runCli(['detokenize', '--ids', e.ids.join(',')]);
    expect(d.status).toBe(0);
    expect(d.stdout).toBe(e.text);
  });
});
