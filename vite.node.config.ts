import { defineConfig } from 'vite';

// Builds the Node entry points (CLI, bench) into dist/node. WGSL and the vocabulary are inlined via `?raw` imports.
export default defineConfig({
  build: {
    ssr: true,
    outDir: 'dist/node',
    emptyOutDir: true,
    target: 'node20',
    minify: false,
    sourcemap: true,
    rollupOptions: {
      input: { cli: 'src/cli/main.ts', bench: 'bench/bench.ts' },
      external: ['webgpu', /^node:/],
      output: { format: 'es', entryFileNames: '[name].js' },
    },
  },
});
