import { defineConfig, type Plugin } from 'vite';

/**
 * The npm package's browser+Node library: dist/lib/index.js (the typed API, `src/index.ts`) and dist/lib/widget.js
 * (`<visual-rwkv-chat>`), ES modules sharing chunks in dist/lib/chunks. The engine's Web Worker is bundled (format es)
 * with onnxruntime-web; ORT's WASM glue (.mjs) and binary (.wasm) are emitted as files in dist/lib/assets.
 * Types come from `tsc -p tsconfig.build.json` (dist/lib/types). Build: `npm run build:lib`.
 *
 * Node: `webgpu` and `node:*` stay external (Dawn is loaded only when createVisualRwkv runs in Node), and in Node the
 * engine imports `onnxruntime-web` from node_modules (its Node build) instead of the bundled browser build.
 */

/**
 * Library mode inlines every `?url` asset as a base64 data URL; ORT's 25 MB .wasm and its glue must stay files
 * (the glue starts pthread workers from its own URL). Adding `no-inline` keeps them files.
 */
function ortAssetsAsFiles(): Plugin {
  return {
    name: 'visualrwkv-ort-assets-as-files',
    enforce: 'pre',
    async resolveId(source, importer, options) {
      if (!/^onnxruntime-web\/.+\?url$/.test(source)) return null;
      return this.resolve(`${source}&no-inline`, importer, { ...options, skipSelf: true });
    },
  };
}

/**
 * In the main bundle, `import('onnxruntime-web')` becomes: Node → the installed package (its Node build, by the
 * `node` export condition); browsers → the bundled browser build. (The worker bundle only runs in browsers.)
 */
function ortNodeImport(): Plugin {
  const FROM = /import\(\s*(['"])onnxruntime-web\1\s*\)/g;
  return {
    name: 'visualrwkv-ort-node-import',
    enforce: 'pre',
    transform(code, id) {
      if (!id.replace(/\\/g, '/').endsWith('/src/vision/encoder.ts')) return null;
      const n = code.match(FROM)?.length ?? 0;
      if (n !== 1) this.error(`expected one import('onnxruntime-web') in ${id}, found ${n}: update vite.lib.config.ts`);
      const to =
        "(typeof process !== 'undefined' && !!process.versions?.node && typeof window === 'undefined' " +
        "? import(/* @vite-ignore */ ['onnxruntime', 'web'].join('-')) : import('onnxruntime-web'))";
      return { code: code.replace(FROM, to), map: null };
    },
  };
}

/**
 * ORT's browser bundle also points at its .wasm with `new URL('ort-wasm-simd-threaded.jsep.wasm', import.meta.url)`,
 * which library mode would inline as 38 MB of base64 (twice). Mark it `no-inline`: it becomes the same emitted file
 * as the `?url` import (equal content, one asset).
 */
function ortBundleWasmAsFile(): Plugin {
  const RE = /new URL\((["'])(ort-[\w.-]+\.wasm)\1\s*,\s*import\.meta\.url\)/g;
  return {
    name: 'visualrwkv-ort-bundle-wasm-as-file',
    enforce: 'pre',
    transform(code, id) {
      if (!/[\\/]onnxruntime-web[\\/]dist[\\/]ort[\w.-]*\.mjs$/.test(id.split('?')[0]!) || !RE.test(code)) return null;
      return { code: code.replace(RE, 'new URL($1$2?no-inline$1, import.meta.url)'), map: null };
    },
  };
}

export default defineConfig({
  plugins: [ortAssetsAsFiles(), ortBundleWasmAsFile(), ortNodeImport()],
  // Relative asset URLs (resolved against import.meta.url): the package works wherever it is served from.
  base: './',
  publicDir: false,
  worker: {
    format: 'es',
    plugins: () => [ortAssetsAsFiles(), ortBundleWasmAsFile()],
    rollupOptions: {
      external: ['webgpu', /^node:/],
      output: { entryFileNames: 'assets/[name]-[hash].js', chunkFileNames: 'assets/[name]-[hash].js' },
    },
  },
  build: {
    outDir: 'dist/lib',
    emptyOutDir: true,
    target: 'es2022',
    minify: false,
    sourcemap: false,
    copyPublicDir: false,
    lib: {
      entry: { index: 'src/index.ts', widget: 'src/widget/index.ts' },
      formats: ['es'],
    },
    rollupOptions: {
      external: ['webgpu', /^node:/],
      output: {
        entryFileNames: '[name].js',
        chunkFileNames: 'chunks/[name]-[hash].js',
        assetFileNames: 'assets/[name]-[hash][extname]',
      },
    },
  },
});
