/** Run the built CLI (`bin/visualrwkv.mjs`, built by `npm run build:node`, which `npm test` does first). */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CLI = ROOT + 'bin/visualrwkv.mjs';

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], input?: string): CliResult {
  if (!existsSync(ROOT + 'dist/node/cli.js')) throw new Error('dist/node/cli.js missing: run `npm run build:node` (npm test does)');
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, encoding: 'utf8', input, timeout: 600_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
