#!/usr/bin/env node
// Launcher for the Node CLI. The CLI itself is TypeScript in src/cli, built to dist/node by `npm run build:node`
// (run automatically by `npm install` via the `prepare` script).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
const cli = fileURLToPath(new URL('../dist/node/cli.js', import.meta.url));
if (!existsSync(cli)) {
  process.stderr.write('visualrwkv: the CLI is not built; run `npm run build:node` first\n');
  process.exit(2);
}
process.env.XDG_RUNTIME_DIR ??= '/tmp';
const { main } = await import(cli);
process.exitCode = await main(process.argv.slice(2));
