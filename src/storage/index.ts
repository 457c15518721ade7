/**
 * The model cache's public surface: `ModelStore` (download / resume / verify / list / delete), the catalogue of
 * released checkpoints and encoders, progress formatting, and the incremental SHA-256.
 *
 * @example
 * import { ModelStore, CATALOG, describeProgress } from './storage';
 * const store = await ModelStore.open();
 * const src = (await store.openCached(CATALOG[0].id)) ?? (await store.download(CATALOG[0], { onProgress: (p) => show(describeProgress(p)) }));
 */
export { ModelStore, type DownloadOptions, type ModelStoreOptions, type StorageInfo, type StorageLike, type StoreEvent } from './store';
export { CATALOG, CLIP_ONNX_REPO, VISUALRWKV_REPO, catalogEntry, fileNameOf, hfResolveUrl, type CatalogEntry } from './catalog';
export type { DownloadEntry } from './download';
export { describeProgress, etaSeconds, formatBytes, formatDuration, formatRate, percentOf, RateMeter, type DownloadProgress } from './progress';
export type { BackendKind, Registry, StoredModel } from './registry';
export { Sha256, sha256Hex, toHex, type Sha256State } from './sha256';
