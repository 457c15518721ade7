#!/usr/bin/env node
// Runs one of the maintenance tools in scripts/*.ts (synthetic-pth, check-real-scale), built to dist/tools by
// `npm run build:tools`. Usage: node scripts/tool.mjs <tool> [args] (--help for each).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
const [name, ...args] = process.argv.slice(2);
if (!name || !/^[a-z0-9-]+$/.test(name)) {
  process.stderr.write('usage: node scripts/tool.mjs <synthetic-pth|check-real-scale> [args]\n');
  process.exit(2);
}
const tool = fileURLToPath(new URL(`../dist/tools/${name}.js`, import.meta.url));
if (!existsSync(tool)) {
  process.stderr.write(`tool: ${name} is not built; run \`npm run build:tools\` first\n`);
  process.exit(2);
}
const { main } = await import(tool);
process.exitCode = await main(args);
