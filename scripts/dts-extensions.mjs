#!/usr/bin/env node
/**
 * Give every relative import in emitted declaration files an explicit `.js` (or `/index.js`) extension, as Node's
 * ESM resolution (TypeScript `moduleResolution: node16 / nodenext`) requires; `bundler` resolution accepts both.
 * The sources import without extensions (vite style), and tsc copies specifiers into .d.ts files unchanged.
 * Usage: node scripts/dts-extensions.mjs dist/lib/types
 */
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

const root = resolve(process.argv[2] ?? 'dist/lib/types');
const SPEC = /(\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(['"])(\.{1,2}\/[^'"]*)\2/g;

function fix(spec, dir) {
  if (/\.(js|mjs|cjs|json)$/.test(spec)) return spec;
  if (existsSync(join(dir, `${spec}.d.ts`))) return `${spec}.js`;
  if (existsSync(join(dir, spec, 'index.d.ts'))) return `${spec}/index.js`;
  throw new Error(`cannot resolve ${spec} from ${dir}`);
}

let files = 0;
let changed = 0;
const visit = (d) => {
  for (const name of readdirSync(d)) {
    const p = join(d, name);
    if (statSync(p).isDirectory()) visit(p);
    else if (name.endsWith('.d.ts')) {
      files++;
      const src = readFileSync(p, 'utf8');
      const out = src.replace(SPEC, (_, pre, q, spec) => `${pre}${q}${fix(spec, dirname(p))}${q}`);
      if (out !== src) {
        writeFileSync(p, out);
        changed++;
      }
    }
  }
};
visit(root);
console.log(`dts-extensions: ${changed} of ${files} declaration files updated in ${root}`);
