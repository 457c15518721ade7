/**
 * The page's side of the offline app: register the service worker (production builds only), show whether the app
 * works offline, offer a new version when one is installed, and ask the worker to keep the model files loaded by
 * URL (`keepOffline`).
 *
 * Status element (optional, e.g. `<p id="offline">`): data-state goes pending → app (the app works offline) →
 * models (… and the model files loaded by URL are stored) or error. Update element (optional): shown with a Reload
 * button when a new version is waiting.
 */
import { type CacheResult, type SwReply, type SwRequest } from './shared';

export interface RegisterOptions {
  /** Where to say whether the app works offline. */
  status?: HTMLElement | null;
  /** Where to offer a new version (a button is added to it). */
  update?: HTMLElement | null;
  /** The service worker script (default `<base>/sw.js`). */
  url?: string;
}

const state: { status: HTMLElement | null; stored: string[]; version: string; active: boolean } = { status: null, stored: [], version: '', active: false };

function supported(): boolean {
  return typeof navigator !== 'undefined' && 'serviceWorker' in navigator && window.isSecureContext;
}

function fileName(url: string): string {
  try {
    return decodeURIComponent(new URL(url, location.href).pathname.split('/').pop() || url);
  } catch {
    return url;
  }
}

function show(s: string, text: string): void {
  const el = state.status;
  if (!el) return;
  el.hidden = false;
  el.dataset.state = s;
  el.textContent = text;
}

function showStored(): void {
  const names = state.stored.map(fileName);
  const v = state.version ? ` (version ${state.version.slice(0, 8)})` : '';
  show(
    names.length ? 'models' : 'app',
    names.length
      ? `Works offline${v}: the app and ${names.join(', ')} are stored on this device.`
      : `Works offline${v}: the app is stored on this device. Models loaded from a URL on this site are stored too.`,
  );
}

/** Send one request to a service worker and wait for its reply (null after `timeoutMs`, if given). */
function ask(worker: ServiceWorker, msg: SwRequest, timeoutMs?: number): Promise<SwReply | null> {
  return new Promise((resolve) => {
    const ch = new MessageChannel();
    ch.port1.onmessage = (e) => resolve(e.data as SwReply);
    worker.postMessage(msg, [ch.port2]);
    if (timeoutMs !== undefined) setTimeout(() => resolve(null), timeoutMs);
  });
}

/**
 * Register the service worker (a no-op in `vite` dev and where service workers are unavailable).
 * Resolves with the registration once it is active, or null.
 */
export async function registerServiceWorker(opts: RegisterOptions = {}): Promise<ServiceWorkerRegistration | null> {
  state.status = opts.status ?? null;
  if (!import.meta.env.PROD || !supported()) return null;
  let reg: ServiceWorkerRegistration;
  try {
    reg = await navigator.serviceWorker.register(opts.url ?? `${import.meta.env.BASE_URL}sw.js`, { scope: import.meta.env.BASE_URL });
  } catch (e) {
    console.warn('service worker registration failed:', e);
    show('error', `Offline use is not available: ${(e as Error).message}`);
    return null;
  }
  if (!reg.active) show('pending', 'Storing the app for offline use…');
  // A first install that fails (e.g. storage full while precaching) leaves no worker to wait for.
  reg.installing?.addEventListener('statechange', (e) => {
    if ((e.target as ServiceWorker).state === 'redundant' && !reg.active) show('error', 'Could not store the app for offline use.');
  });
  watchUpdates(reg, opts.update ?? null);
  const ready = await navigator.serviceWorker.ready;
  const reply = await ask(ready.active!, { type: 'version' }, 5000);
  if (reply?.type === 'version') state.version = reply.version;
  state.active = true;
  showStored();
  return ready;
}

/** A new version installed while this page runs on the old one: offer to reload into it. */
function watchUpdates(reg: ServiceWorkerRegistration, el: HTMLElement | null): void {
  const offer = (worker: ServiceWorker) => {
    if (!navigator.serviceWorker.controller || !el) return;
    el.hidden = false;
    el.dataset.state = 'waiting';
    el.textContent = 'A new version of VisualRWKV is ready. ';
    const button = document.createElement('button');
    button.type = 'button';
    button.textContent = 'Reload';
    button.addEventListener('click', () => {
      button.disabled = true;
      navigator.serviceWorker.addEventListener('controllerchange', () => location.reload(), { once: true });
      worker.postMessage({ type: 'skip-waiting' } satisfies SwRequest);
    });
    el.append(button);
  };
  if (reg.waiting) offer(reg.waiting);
  reg.addEventListener('updatefound', () => {
    const w = reg.installing;
    w?.addEventListener('statechange', () => {
      if (w.state === 'installed') offer(w);
    });
  });
}

/**
 * Say that these model files (URLs or names) are stored on this device by other means (the page's ModelStore in
 * OPFS / the Cache API), so the status line lists them with the app. Shown once the app itself works offline.
 * @example noteStoredModels(['/models/visualrwkv.pth']);
 */
export function noteStoredModels(files: readonly (string | null | undefined)[]): void {
  for (const f of files) {
    if (!f) continue;
    const url = new URL(f, location.href).href;
    if (!state.stored.includes(url)) state.stored.push(url);
  }
  if (state.active) showStored();
}

/**
 * Ask the service worker to store these model files (same-origin URLs; others are skipped) for offline use.
 * Resolves when they are stored (or failed); never rejects.
 * @example await keepOffline(['/models/visualrwkv.pth', '/models/vision_model.onnx']);
 */
export async function keepOffline(urls: readonly (string | null | undefined)[]): Promise<CacheResult[]> {
  const list = urls.filter((u): u is string => !!u).map((u) => new URL(u, location.href).href);
  if (!list.length || !import.meta.env.PROD || !supported()) return [];
  try {
    const reg = await navigator.serviceWorker.ready;
    await navigator.storage?.persist?.().catch(() => false);
    const reply = await ask(reg.active!, { type: 'cache-urls', urls: list });
    const results = reply?.type === 'cache-result' ? reply.results : [];
    for (const r of results) if ((r.status === 'cached' || r.status === 'present') && !state.stored.includes(r.url)) state.stored.push(r.url);
    const failed = results.filter((r) => r.status === 'failed');
    if (failed.length) {
      show('error', `Could not store ${failed.map((r) => `${fileName(r.url)} (${r.error})`).join(', ')} for offline use.`);
    } else showStored();
    return results;
  } catch (e) {
    console.warn('storing models for offline use failed:', e);
    return [];
  }
}
