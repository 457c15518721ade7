#!/usr/bin/env node
// Launcher for `npm run bench`. The benchmark is TypeScript in bench/, built to dist/node/bench.js by
// `npm run build:node` (the bench script runs it first). Prints one JSON object on stdout, progress on stderr.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
const bench = fileURLToPath(new URL('../dist/node/bench.js', import.meta.url));
if (!existsSync(bench)) {
  process.stderr.write('bench: not built; run `npm run build:node` first\n');
  process.exit(2);
}
process.env.XDG_RUNTIME_DIR ??= '/tmp';
const { main } = await import(bench);
process.exitCode = await main(process.argv.slice(2));
