/**
 * Browser-only: where onnxruntime-web's WASM glue (`.mjs`) and binary (`.wasm`) come from after a vite build.
 *
 * The `?url` imports make vite emit both files from `node_modules/onnxruntime-web/dist/` unchanged as hashed assets
 * (`dist/app/assets/ort-wasm-simd-threaded.jsep-<hash>.{mjs,wasm}`) and give us their URLs; in `vite` dev they are
 * served from node_modules. Handing both to `ort.env.wasm.wasmPaths` makes ORT dynamically import that `.mjs` instead
 * of its copy embedded in the app bundle, so its pthread workers (`new Worker(import.meta.url)` inside the `.mjs`)
 * start the glue file itself, not the app bundle (the known failure of multi-threaded ORT after bundling).
 *
 * The JSEP build is the one the default `onnxruntime-web` entry uses: it serves both the 'webgpu' and 'wasm'
 * execution providers. Node never loads this module (ORT's Node build finds its own files).
 */
import mjs from 'onnxruntime-web/ort-wasm-simd-threaded.jsep.mjs?url';
import wasm from 'onnxruntime-web/ort-wasm-simd-threaded.jsep.wasm?url';

/** `ort.env.wasm.wasmPaths` value for the default (JSEP) onnxruntime-web entry. */
export const ORT_WASM_PATHS: { mjs: string; wasm: string } = { mjs, wasm };
