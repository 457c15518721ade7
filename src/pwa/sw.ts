/**
 * The service worker of the chat app (built to `sw.js` at the app root by vite-plugin.ts, a classic script).
 *
 * - App shell: every file of the build (HTML, JS chunks, the engine's worker, onnxruntime's .mjs/.wasm, CSS, icons,
 *   manifest) is precached on install into `visualrwkv-shell-<version>`; the version is a hash of the build's files,
 *   so any change to the app gives a new sw.js. Activation deletes every other shell cache and claims the open pages.
 *   A new version waits until the page asks for it (`skip-waiting`, the page's "Reload" button) or every tab closes,
 *   so a running page never mixes files of two versions.
 * - Shell requests are served cache-first; navigations to the app (any query string) get the cached index.html.
 * - Model files (same-origin `.pth`, `.safetensors`, `.onnx`): answered from `visualrwkv-url-models-v1` when present,
 *   including Range requests (sliced from the stored file → 206), else from the network. A full 200 GET is stored on
 *   the way through (unless the request says `cache: 'no-store'`); the page asks for the files it loaded by URL to be
 *   stored (`cache-urls`), which fetches them whole once. The model cache survives app updates.
 * - Every response built here carries COOP/COEP/CORP, so the page stays cross-origin isolated offline.
 */
import {
  ISOLATION_HEADERS,
  MODEL_CACHE,
  SHELL_CACHE_PREFIX,
  isModelPath,
  parseRange,
  type CacheResult,
  type SwReply,
  type SwRequest,
} from './shared';

/** Replaced at build time (vite-plugin.ts): hash of the build's files, and their paths relative to the scope. */
declare const __VRWKV_SW_VERSION__: string;
declare const __VRWKV_SW_PRECACHE__: readonly string[];

const sw = self as unknown as ServiceWorkerGlobalScope;
const VERSION = __VRWKV_SW_VERSION__;
const SHELL_CACHE = SHELL_CACHE_PREFIX + VERSION;
const SCOPE = new URL(sw.registration.scope);
const INDEX = new URL('index.html', SCOPE).href;
const PRECACHE = __VRWKV_SW_PRECACHE__.map((p) => new URL(p, SCOPE).href);
const PRECACHED_PATHS = new Set(PRECACHE.map((u) => new URL(u).pathname));
/** Fraction of the origin's quota a model download may fill up to. */
const QUOTA_USE = 0.9;

sw.addEventListener('install', (e) => {
  e.waitUntil(
    (async () => {
      const cache = await caches.open(SHELL_CACHE);
      // 'reload' skips the HTTP cache: the stored files are exactly this build's.
      await cache.addAll(PRECACHE.map((u) => new Request(u, { cache: 'reload' })));
    })(),
  );
});

sw.addEventListener('activate', (e) => {
  e.waitUntil(
    (async () => {
      for (const key of await caches.keys()) {
        if (key.startsWith(SHELL_CACHE_PREFIX) && key !== SHELL_CACHE) await caches.delete(key);
      }
      await sw.clients.claim();
    })(),
  );
});

sw.addEventListener('message', (e) => {
  const msg = e.data as SwRequest | undefined;
  const port = e.ports[0];
  const reply = (r: SwReply) => port?.postMessage(r);
  if (msg?.type === 'skip-waiting') e.waitUntil(sw.skipWaiting());
  else if (msg?.type === 'version') reply({ type: 'version', version: VERSION });
  else if (msg?.type === 'cache-urls' && Array.isArray(msg.urls)) {
    e.waitUntil(cacheUrls(msg.urls).then((results) => reply({ type: 'cache-result', results })));
  }
});

sw.addEventListener('fetch', (e) => {
  const req = e.request;
  if (req.method !== 'GET') return;
  const url = new URL(req.url);
  if (url.origin !== SCOPE.origin) return;
  if (req.mode === 'navigate') {
    if (url.pathname === SCOPE.pathname || url.href.split(/[?#]/)[0] === INDEX) e.respondWith(shellFile(req, INDEX));
    return;
  }
  if (PRECACHED_PATHS.has(url.pathname)) e.respondWith(shellFile(req, url.origin + url.pathname));
  else if (isModelPath(url.pathname)) e.respondWith(modelFile(e, req));
});

/** A copy of `res` with the cross-origin isolation headers (and `extra`) set. */
function isolated(res: Response, body: BodyInit | null = res.body, status = res.status, extra: Record<string, string> = {}): Response {
  const headers = new Headers(res.headers);
  for (const [k, v] of Object.entries({ ...ISOLATION_HEADERS, ...extra })) headers.set(k, v);
  return new Response(body, { status, statusText: status === res.status ? res.statusText : '', headers });
}

/** Cache-first for a file of this version; the network if the cache lost it. */
async function shellFile(req: Request, key: string): Promise<Response> {
  const hit = await (await caches.open(SHELL_CACHE)).match(key);
  if (hit) return isolated(hit);
  return fetch(req);
}

async function modelFile(e: FetchEvent, req: Request): Promise<Response> {
  const cache = await caches.open(MODEL_CACHE);
  const hit = await cache.match(req.url, { ignoreVary: true });
  if (hit) return fromStored(hit, req.headers.get('range'));
  const res = await fetch(req);
  const storable =
    res.status === 200 &&
    !req.headers.has('range') &&
    req.cache !== 'no-store' &&
    !/no-store/i.test(res.headers.get('cache-control') ?? '');
  if (storable) e.waitUntil(cache.put(req.url, res.clone()).catch((err) => console.warn(`[sw] not stored: ${req.url}: ${err}`)));
  return res;
}

/** A stored model file, whole (200) or the requested byte range (206 / 416). */
async function fromStored(stored: Response, range: string | null): Promise<Response> {
  const blob = await stored.blob();
  const size = blob.size;
  const r = parseRange(range, size);
  const common = { 'Accept-Ranges': 'bytes' };
  if (r === null) return isolated(stored, blob, 200, { ...common, 'Content-Length': String(size) });
  if (r === 'unsatisfiable') return isolated(stored, null, 416, { ...common, 'Content-Range': `bytes */${size}`, 'Content-Length': '0' });
  return isolated(stored, blob.slice(r.start, r.end + 1), 206, {
    ...common,
    'Content-Range': `bytes ${r.start}-${r.end}/${size}`,
    'Content-Length': String(r.end - r.start + 1),
  });
}

const inflight = new Map<string, Promise<CacheResult>>();

/** Store same-origin model files whole (each URL once at a time). */
function cacheUrls(urls: string[]): Promise<CacheResult[]> {
  return Promise.all(
    urls.map((raw) => {
      let url: URL;
      try {
        url = new URL(raw, SCOPE);
      } catch {
        return { url: raw, status: 'failed', error: 'not a URL' } satisfies CacheResult;
      }
      if (url.origin !== SCOPE.origin || !isModelPath(url.pathname)) return { url: url.href, status: 'skipped' } satisfies CacheResult;
      let job = inflight.get(url.href);
      if (!job) {
        job = storeWhole(url.href).finally(() => inflight.delete(url.href));
        inflight.set(url.href, job);
      }
      return job;
    }),
  );
}

async function storeWhole(url: string): Promise<CacheResult> {
  const cache = await caches.open(MODEL_CACHE);
  const hit = await cache.match(url);
  if (hit) return { url, status: 'present', bytes: Number(hit.headers.get('content-length')) || undefined };
  try {
    const res = await fetch(url);
    if (res.status !== 200) {
      await res.body?.cancel();
      return { url, status: 'failed', error: `HTTP ${res.status} ${res.statusText}`.trim() };
    }
    const bytes = Number(res.headers.get('content-length')) || undefined;
    const est = await navigator.storage?.estimate?.().catch(() => undefined);
    if (bytes && est?.quota && (est.usage ?? 0) + bytes > est.quota * QUOTA_USE) {
      await res.body?.cancel();
      return { url, status: 'failed', bytes, error: `not enough storage (${bytes} bytes needed, ${Math.max(0, est.quota * QUOTA_USE - (est.usage ?? 0)) | 0} free)` };
    }
    await cache.put(url, res);
    return { url, status: 'cached', bytes };
  } catch (err) {
    return { url, status: 'failed', error: String((err as Error)?.message ?? err) };
  }
}
