import { defineConfig } from 'vite';
import { pwa } from './src/pwa/vite-plugin.js';

const isolation = {
  // Cross-origin isolation: needed later for multi-threaded onnxruntime-web WASM.
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

export default defineConfig({
  // pwa(): after `vite build`, writes dist/app/sw.js (the offline service worker, versioned by the build's files).
  plugins: [pwa()],
  server: { headers: isolation, host: '127.0.0.1', port: 5173 },
  preview: { headers: isolation, host: '127.0.0.1', port: 4173 },
  worker: { format: 'es' },
  build: { outDir: 'dist/app', target: 'es2022' },
});
