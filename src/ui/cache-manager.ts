/**
 * The model cache manager: a self-contained panel listing stored models (size, state, date), with delete, the
 * total they use, the browser's storage estimate, a button asking for persistent storage, and (optionally) the
 * catalogue's models with Download / Resume / Cancel and live progress. It only talks to a ModelStore; it injects
 * one small stylesheet (`#vr-cache-style`, every rule under `.vr-cache`, colours inherited) that a page may override.
 *
 * Rows carry `data-id` and `data-state` ('complete' | 'partial' | 'downloading' | 'available'); buttons carry
 * `data-action` ('use' | 'download' | 'cancel' | 'delete' | 'persist'), for styling and tests. Files made on this
 * device from another (GPU-ready copies, `StoredModel.derivedFrom`) say so in their status.
 *
 * With `urlCache` (the service worker's cache of files fetched by URL, `visualrwkv-url-models-v1`), a second table
 * lists its entries (URL, size) with Delete and Delete all (rows `data-url`, buttons `data-action` 'delete-url' /
 * 'clear-urls').
 *
 * @example
 * const store = await ModelStore.open();
 * const manager = mountCacheManager(document.querySelector('#models')!, store, {
 *   catalog: CATALOG,
 *   onUse: async (rec) => start(await store.openCached(rec.id)),
 * });
 * // later: manager.destroy();
 */
import type { CatalogEntry } from '../storage/catalog';
import type { DownloadEntry } from '../storage/download';
import { describeProgress, formatBytes, percentOf, type DownloadProgress } from '../storage/progress';
import type { StoredModel } from '../storage/registry';
import type { ModelStore, StoreEvent } from '../storage/store';

export interface CacheManagerOptions {
  /** Models offered for download (e.g. CATALOG). Default: none, only stored files are listed. */
  catalog?: readonly CatalogEntry[];
  /** Adds a "Use" button to complete files. */
  onUse?: (rec: StoredModel) => void | Promise<void>;
  /** Confirm a delete. Default: the Delete button asks for a second click within 5 s. */
  confirmDelete?: (rec: StoredModel) => boolean | Promise<boolean>;
  /** Errors of user actions (they are also shown in the panel). */
  onError?: (e: unknown) => void;
  /** Panel heading (default 'Stored models'; '' for none). */
  title?: string;
  /** Name of a Cache API cache of files stored by URL (the service worker's) to list and clear as well. */
  urlCache?: string;
}

export interface CacheManager {
  /** The panel's root element (inside the element given to mount). */
  readonly element: HTMLElement;
  /** Re-read the registry and the estimate and redraw. */
  refresh(): Promise<void>;
  /** Stop listening and remove the panel. Running downloads continue. */
  destroy(): void;
}

/** The ModelStore methods the panel uses. */
export type CacheManagerStore = Pick<
  ModelStore,
  'list' | 'estimate' | 'requestPersistence' | 'download' | 'delete' | 'cancel' | 'activeDownloads' | 'subscribe'
>;

const STYLE_ID = 'vr-cache-style';
const CSS = `
.vr-cache { font: inherit; color: inherit; }
.vr-cache h2 { font-size: 1.1em; margin: 0 0 .5em; }
.vr-cache-summary { display: flex; flex-wrap: wrap; gap: .25em 1em; align-items: center; margin-bottom: .5em; }
.vr-cache-table { width: 100%; border-collapse: collapse; }
.vr-cache-table th, .vr-cache-table td { text-align: left; padding: .3em .5em; border-bottom: 1px solid color-mix(in srgb, currentColor 20%, transparent); vertical-align: top; }
.vr-cache-table td.vr-num { white-space: nowrap; font-variant-numeric: tabular-nums; }
.vr-cache-table small { opacity: .7; display: block; }
.vr-cache-actions { white-space: nowrap; }
.vr-cache-actions button { margin-right: .3em; }
.vr-cache progress { width: 10em; vertical-align: middle; margin-right: .5em; }
.vr-cache-message { min-height: 1.2em; margin: .5em 0 0; }
.vr-cache-message[data-kind="error"] { color: #c62828; }
.vr-cache-empty { opacity: .7; }
.vr-cache h3 { font-size: 1em; margin: 1em 0 .3em; }
.vr-cache-url { overflow-wrap: anywhere; }
`;

type Row =
  | { id: string; kind: 'stored'; rec: StoredModel; entry?: CatalogEntry }
  | { id: string; kind: 'available'; entry: CatalogEntry };

function el<K extends keyof HTMLElementTagNameMap>(tag: K, props: Record<string, string> = {}, ...children: (Node | string | null | undefined)[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function dateOf(rec: StoredModel): string {
  return new Date(rec.completedAt ?? rec.updatedAt).toLocaleString();
}

function sizeOf(row: Row): string {
  if (row.kind === 'stored') {
    const t = row.rec.total ?? row.entry?.size;
    return row.rec.state === 'complete' || t === undefined ? formatBytes(row.rec.bytes) : formatBytes(t);
  }
  const e = row.entry;
  if (e.size !== undefined) return formatBytes(e.size);
  if (e.approxSize !== undefined) return `≈ ${formatBytes(e.approxSize)}`;
  return e.sizeNote ?? 'unknown';
}

/** Mount the cache manager into `host` (its previous content is kept; the panel is appended). */
export function mountCacheManager(host: HTMLElement, store: CacheManagerStore, options: CacheManagerOptions = {}): CacheManager {
  if (!document.getElementById(STYLE_ID)) document.head.append(el('style', { id: STYLE_ID, text: CSS }));
  const root = el('section', { class: 'vr-cache', 'aria-label': options.title || 'Stored models' });
  const summary = el('div', { class: 'vr-cache-summary' });
  const tbody = el('tbody');
  const table = el(
    'table',
    { class: 'vr-cache-table' },
    el('thead', {}, el('tr', {}, ...['Model', 'Size', 'Status', 'Date', ''].map((t) => el('th', { scope: 'col', text: t })))),
    tbody,
  );
  const message = el('p', { class: 'vr-cache-message', role: 'status', 'aria-live': 'polite' });
  if (options.title !== '') root.append(el('h2', { text: options.title ?? 'Stored models' }));
  root.append(summary, table);
  const urlSection = options.urlCache ? el('div', { class: 'vr-cache-urls', 'data-role': 'url-cache' }) : null;
  if (urlSection) root.append(urlSection);
  root.append(message);
  host.append(root);

  const progress = new Map<string, DownloadProgress>();
  const statusCells = new Map<string, HTMLElement>();
  let destroyed = false;
  let pending: ReturnType<typeof setTimeout> | undefined;
  let rendering: Promise<void> | null = null;
  let again = false;

  const say = (text: string, kind: 'info' | 'error' = 'info') => {
    message.textContent = text;
    message.dataset.kind = kind;
  };
  const fail = (e: unknown) => {
    if ((e as DOMException)?.name === 'AbortError') return say('Download paused; the data so far is kept.');
    say((e as Error)?.message ?? String(e), 'error');
    options.onError?.(e);
  };

  const progressNode = (p: DownloadProgress, name: string): Node => {
    const bar = el('progress', { max: '100', 'aria-label': `Downloading ${name}` });
    const pct = p.percent ?? percentOf(p.loaded, p.total);
    if (pct !== undefined) bar.value = pct; // no value: an indeterminate bar (total unknown)
    const label = p.phase === 'downloading' ? describeProgress(p) : `${p.phase[0]!.toUpperCase()}${p.phase.slice(1)}…`;
    return el('span', {}, bar, label);
  };

  const statusOf = (row: Row): Node => {
    const p = progress.get(row.id);
    const active = store.activeDownloads().includes(row.id);
    if (active && p) return progressNode(p, row.kind === 'stored' ? row.rec.name : row.entry.name);
    if (active) return document.createTextNode('Starting…');
    if (row.kind === 'available') return document.createTextNode('Not downloaded');
    const r = row.rec;
    if (r.state === 'complete' && r.derivedFrom) return el('span', { title: `Made on this device from ${r.derivedFrom}` }, 'GPU-ready copy');
    if (r.state === 'complete') return el('span', { title: r.sha256 ? `SHA-256 ${r.sha256}` : '' }, r.expectedSha256 ? 'Verified (SHA-256)' : 'Complete');
    const pct = percentOf(r.bytes, r.total);
    return document.createTextNode(`Partial: ${formatBytes(r.bytes)}${r.total !== undefined ? ` of ${formatBytes(r.total)} (${Math.floor(pct ?? 0)}%)` : ''}`);
  };

  const downloadEntry = (row: Row): DownloadEntry | undefined => {
    if (row.kind === 'available') return row.entry;
    if (row.entry) return row.entry;
    const r = row.rec;
    if (!r.url) return undefined;
    return { id: r.id, name: r.name, url: r.url, ...(r.expectedSha256 ? { sha256: r.expectedSha256 } : {}) };
  };

  const startDownload = (entry: DownloadEntry) => {
    say('');
    store.download(entry).then(
      () => say(`${entry.name} is stored and verified.`),
      (e) => fail(e),
    );
    schedule();
  };

  const actions = (row: Row): HTMLElement => {
    const td = el('td', { class: 'vr-cache-actions' });
    const name = row.kind === 'stored' ? row.rec.name : row.entry.name;
    const active = store.activeDownloads().includes(row.id);
    if (row.kind === 'stored' && row.rec.state === 'complete' && options.onUse) {
      const rec = row.rec;
      const b = el('button', { type: 'button', 'data-action': 'use', 'aria-label': `Use ${name}`, text: 'Use' });
      b.onclick = () => void Promise.resolve(options.onUse!(rec)).catch(fail);
      td.append(b);
    }
    if (active) {
      const b = el('button', { type: 'button', 'data-action': 'cancel', 'aria-label': `Pause the download of ${name}`, text: 'Pause' });
      b.onclick = () => store.cancel(row.id);
      td.append(b);
    } else if (row.kind === 'available' || row.rec.state === 'partial') {
      const entry = downloadEntry(row);
      if (entry) {
        const label = row.kind === 'available' ? 'Download' : 'Resume';
        const b = el('button', { type: 'button', 'data-action': 'download', 'aria-label': `${label} ${name}`, text: label });
        b.onclick = () => startDownload(entry);
        td.append(b);
      }
    }
    if (row.kind === 'stored') {
      const rec = row.rec;
      const b = el('button', { type: 'button', 'data-action': 'delete', 'aria-label': `Delete ${name}`, text: 'Delete' });
      let armed: ReturnType<typeof setTimeout> | undefined;
      b.onclick = async () => {
        if (options.confirmDelete) {
          if (!(await options.confirmDelete(rec))) return;
        } else if (armed === undefined) {
          b.textContent = 'Confirm delete';
          b.dataset.confirm = 'true';
          armed = setTimeout(() => {
            armed = undefined;
            b.textContent = 'Delete';
            delete b.dataset.confirm;
          }, 5000);
          return;
        }
        clearTimeout(armed);
        b.disabled = true;
        try {
          await store.delete(rec.id);
          say(`${rec.name} was deleted.`);
        } catch (e) {
          fail(e);
        }
        schedule();
      };
      td.append(b);
    }
    return td;
  };

  const render = async () => {
    const [records, est] = await Promise.all([store.list(), store.estimate().catch(() => undefined)]);
    if (destroyed) return;
    const byId = new Map(records.map((r) => [r.id, r]));
    const rows: Row[] = [];
    for (const entry of options.catalog ?? []) {
      const rec = byId.get(entry.id);
      rows.push(rec ? { id: entry.id, kind: 'stored', rec, entry } : { id: entry.id, kind: 'available', entry });
      byId.delete(entry.id);
    }
    for (const rec of byId.values()) rows.push({ id: rec.id, kind: 'stored', rec });

    // Summary: what models use, the site's usage/quota, persistence.
    const modelsBytes = records.reduce((a, r) => a + r.bytes, 0);
    const parts = [`Models: ${formatBytes(modelsBytes)} in ${records.length} file${records.length === 1 ? '' : 's'}`];
    if (est?.usage !== undefined && est.quota !== undefined) {
      parts.push(`Site storage: ${formatBytes(est.usage)} used of ${formatBytes(est.quota)} (${formatBytes(est.available ?? 0)} free)`);
    }
    const usage = el('span', { 'data-role': 'usage', text: parts.join(' · ') });
    const persist = el('span', { 'data-role': 'persist' });
    if (est?.persisted) persist.textContent = 'Storage is persistent.';
    else {
      persist.append('The browser may clear stored models when disk space runs low. ');
      const b = el('button', { type: 'button', 'data-action': 'persist', text: 'Keep stored models' });
      b.onclick = async () => {
        const ok = await store.requestPersistence();
        say(ok ? 'Storage is now persistent.' : 'The browser did not grant persistent storage (it may after more use of the site, or when the site is installed).');
        schedule();
      };
      persist.append(b);
    }
    summary.replaceChildren(usage, persist);

    statusCells.clear();
    tbody.replaceChildren(
      ...(rows.length === 0
        ? [el('tr', {}, el('td', { colspan: '5', class: 'vr-cache-empty', text: 'No models stored yet.' }))]
        : rows.map((row) => {
            const active = store.activeDownloads().includes(row.id);
            const state = active ? 'downloading' : row.kind === 'available' ? 'available' : row.rec.state;
            const name = row.kind === 'stored' ? row.rec.name : row.entry.name;
            const sub = row.kind === 'stored' ? row.rec.fileName : undefined;
            const note = row.entry?.note;
            const status = el('td', { 'data-name': name }, statusOf(row));
            statusCells.set(row.id, status);
            return el(
              'tr',
              { 'data-id': row.id, 'data-state': state },
              el('td', note ? { title: note } : {}, name, sub && sub !== name ? el('small', { text: sub }) : null),
              el('td', { class: 'vr-num', text: sizeOf(row) }),
              status,
              el('td', { class: 'vr-num', text: row.kind === 'stored' ? dateOf(row.rec) : '' }),
              actions(row),
            );
          })),
    );
    if (urlSection) await renderUrlCache(urlSection, options.urlCache!);
    root.dataset.ready = 'true';
  };

  /** The service worker's URL cache: one row per stored URL, Delete, Delete all. */
  const renderUrlCache = async (section: HTMLElement, name: string) => {
    if (typeof caches === 'undefined' || !(await caches.has(name))) return void section.replaceChildren();
    const cache = await caches.open(name);
    const rows: HTMLElement[] = [];
    let total = 0;
    for (const req of await cache.keys()) {
      const res = await cache.match(req);
      const size = Number(res?.headers.get('content-length')) || (res ? (await res.blob()).size : 0);
      total += size;
      const del = el('button', { type: 'button', 'data-action': 'delete-url', 'aria-label': `Delete ${req.url}`, text: 'Delete' });
      del.onclick = async () => {
        del.disabled = true;
        await cache.delete(req).catch(fail);
        say(`${req.url} was deleted.`);
        schedule();
      };
      rows.push(el('tr', { 'data-url': req.url }, el('td', { class: 'vr-cache-url', text: req.url }), el('td', { class: 'vr-num', text: formatBytes(size) }), el('td', { class: 'vr-cache-actions' }, del)));
    }
    if (!rows.length) return void section.replaceChildren();
    const clearAll = el('button', { type: 'button', 'data-action': 'clear-urls', text: 'Delete all' });
    clearAll.onclick = async () => {
      clearAll.disabled = true;
      await caches.delete(name).catch(fail);
      say('The files stored by URL were deleted.');
      schedule();
    };
    section.replaceChildren(
      el('h3', { text: `Files stored by URL for offline use (${formatBytes(total)})` }),
      el(
        'table',
        { class: 'vr-cache-table' },
        el('thead', {}, el('tr', {}, ...['URL', 'Size', ''].map((t) => el('th', { scope: 'col', text: t })))),
        el('tbody', {}, ...rows),
      ),
      clearAll,
    );
  };

  const refresh = async (): Promise<void> => {
    if (rendering) {
      again = true;
      return rendering;
    }
    rendering = (async () => {
      do {
        again = false;
        try {
          await render();
        } catch (e) {
          fail(e);
        }
      } while (again && !destroyed);
    })().finally(() => {
      rendering = null;
    });
    return rendering;
  };

  function schedule(): void {
    if (destroyed || pending !== undefined) return;
    pending = setTimeout(() => {
      pending = undefined;
      void refresh();
    }, 50);
  }

  const unsubscribe = store.subscribe((e: StoreEvent) => {
    if (e.type === 'change') {
      if (!store.activeDownloads().includes(e.id)) progress.delete(e.id);
      schedule();
      return;
    }
    const p = e.progress;
    const known = progress.has(p.id);
    progress.set(p.id, p);
    const cell = statusCells.get(p.id);
    // Update the status cell in place while streaming; redraw the table when a download starts or ends.
    if (cell && known && p.phase === 'downloading') {
      cell.replaceChildren(progressNode(p, cell.dataset.name ?? p.id));
      if (cell.parentElement) cell.parentElement.dataset.state = 'downloading';
    } else schedule();
  });

  void refresh();
  return {
    element: root,
    refresh,
    destroy() {
      destroyed = true;
      clearTimeout(pending);
      unsubscribe();
      root.remove();
    },
  };
}
