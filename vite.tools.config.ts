import { defineConfig } from 'vite';

// Builds the maintenance tools of scripts/*.ts into dist/tools (not part of the npm package, unlike dist/node):
//   npm run build:tools && node scripts/tool.mjs <name> [args]
export default defineConfig({
  build: {
    ssr: true,
    outDir: 'dist/tools',
    emptyOutDir: true,
    target: 'node20',
    minify: false,
    sourcemap: true,
    rollupOptions: {
      input: { 'synthetic-pth': 'scripts/synthetic-pth.ts', 'check-real-scale': 'scripts/check-real-scale.ts' },
      external: ['webgpu', /^node:/],
      output: { format: 'es', entryFileNames: '[name].js' },
    },
  },
});
