/**
 * Vite plugin (build only): after the app is written, bundle src/pwa/sw.ts into `<outDir>/sw.js` (a classic script)
 * with the list of every output file to precache and a version = SHA-256 of those files (names and bytes), so
 * every change to the app gives a byte-different sw.js and browsers install the new version.
 * @example
 * // vite.config.ts
 * export default defineConfig({ plugins: [pwa()] });
 */
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin, type ResolvedConfig } from 'vite';

export interface PwaOptions {
  /** The service worker source (default src/pwa/sw.ts next to this file). */
  entry?: string;
  /** Output name at the root of outDir (default sw.js). */
  fileName?: string;
}

/** Files of a build directory, as sorted posix paths relative to it (dotfiles, source maps and `skip` left out). */
export function buildFiles(dir: string, skip: string): string[] {
  const out: string[] = [];
  const visit = (d: string) => {
    for (const name of readdirSync(d)) {
      if (name.startsWith('.')) continue;
      const p = join(d, name);
      if (statSync(p).isDirectory()) visit(p);
      else if (!name.endsWith('.map')) out.push(relative(dir, p).split(sep).join('/'));
    }
  };
  visit(dir);
  return out.filter((f) => f !== skip).sort();
}

/** The build version: SHA-256 over the files' paths and contents (first 16 hex digits). */
export function buildVersion(dir: string, files: readonly string[]): string {
  const h = createHash('sha256');
  for (const f of files) {
    h.update(`${f}\0`);
    h.update(readFileSync(join(dir, f)));
    h.update('\0');
  }
  return h.digest('hex').slice(0, 16);
}

export function pwa(opts: PwaOptions = {}): Plugin {
  const entry = opts.entry ?? fileURLToPath(new URL('./sw.ts', import.meta.url));
  const fileName = opts.fileName ?? 'sw.js';
  let config: ResolvedConfig;
  return {
    name: 'visualrwkv-pwa',
    apply: 'build',
    configResolved(c) {
      config = c;
    },
    async writeBundle(options) {
      if (config.build.ssr || config.build.lib) return;
      const outDir = resolve(config.root, options.dir ?? config.build.outDir);
      const files = buildFiles(outDir, fileName);
      const version = buildVersion(outDir, files);
      const result = await build({
        configFile: false,
        root: config.root,
        logLevel: 'warn',
        mode: config.mode,
        publicDir: false,
        define: {
          __VRWKV_SW_VERSION__: JSON.stringify(version),
          __VRWKV_SW_PRECACHE__: JSON.stringify(files),
        },
        build: {
          write: false,
          emptyOutDir: false,
          copyPublicDir: false,
          target: 'es2022',
          minify: true,
          sourcemap: false,
          lib: { entry, formats: ['iife'], name: 'visualrwkvServiceWorker', fileName: () => fileName },
        },
      });
      const outputs = (Array.isArray(result) ? result : [result]) as { output: { type: string; code?: string }[] }[];
      const chunk = outputs.flatMap((r) => r.output).find((o) => o.type === 'chunk');
      if (!chunk?.code) throw new Error('visualrwkv-pwa: bundling the service worker gave no code');
      writeFileSync(join(outDir, fileName), `// VisualRWKV service worker, version ${version}\n${chunk.code}`);
      config.logger.info(`[pwa] ${fileName}: version ${version}, ${files.length} files precached`);
    },
  };
}
