/** Test page script (tests/e2e/preprocess.test.ts): puts the vision API on `globalThis.vision` and marks the page ready. */
import { decodeImage, sniffImageFormat } from '../../../src/vision/decode';
import { clipPreprocess, clipResizeCrop, resizeBicubic } from '../../../src/vision/preprocess';

(globalThis as unknown as { vision: unknown }).vision = { decodeImage, sniffImageFormat, clipPreprocess, clipResizeCrop, resizeBicubic };
document.body.dataset.ready = 'true';
