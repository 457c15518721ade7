/**
 * HTTP server for end-to-end tests: the app as built by `vite build` (served by vite's `preview()`, so the COOP/COEP
 * headers of vite.config.ts apply) or by the dev server, plus extra directories mounted on the same origin
 * (e.g. tests/fixtures at /fixtures/) with Range support, for tests that load model files by URL.
 *
 * The build goes to dist/app once and is reused while its inputs are unchanged (a stamp file records them), so
 * several e2e files in one run, or repeated runs, build once. A lock directory keeps parallel vitest forks from
 * building at the same time.
 *
 * @example
 * const server = await startServer({ mounts: { '/fixtures/': 'tests/fixtures' } });
 * await page.goto(server.url);               // http://127.0.0.1:PORT/
 * await fetch(`${server.url}fixtures/index.json`, { headers: { Range: 'bytes=0-99' } }); // 206
 * await server.close();
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { dirname, extname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, createServer, preview, type Connect, type Plugin } from 'vite';

/** The project root (where vite.config.ts lives). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** Where the app is built (vite.config.ts `build.outDir`). */
export const APP_DIR = join(ROOT, 'dist/app');
const CONFIG_FILE = join(ROOT, 'vite.config.ts');
const STAMP = '.e2e-build-stamp';
const LOCK = join(ROOT, 'dist/.e2e-build.lock');
/** Files and folders whose change means the app must be rebuilt. */
const BUILD_INPUTS = ['index.html', 'vite.config.ts', 'package.json', 'package-lock.json', 'tsconfig.json', 'src', 'shaders', 'public', 'data'];

export interface TestServer {
  /** Origin with a trailing slash, e.g. `http://127.0.0.1:41234/`. */
  url: string;
  close(): Promise<void>;
}

export interface ServeOptions {
  /** 'build' (default): `vite build` once, then `preview()` of dist/app. 'dev': vite's dev server (no build). */
  mode?: 'build' | 'dev';
  /** URL prefix → directory (relative to the project root or absolute), e.g. `{ '/fixtures/': 'tests/fixtures' }`. */
  mounts?: Record<string, string>;
}

/** Start the app server on a free 127.0.0.1 port. */
export async function startServer(options: ServeOptions = {}): Promise<TestServer> {
  const mode = options.mode ?? 'build';
  const plugins = [mountPlugin(options.mounts ?? {})];
  const common = { configFile: CONFIG_FILE, root: ROOT, logLevel: 'warn' as const, plugins, clearScreen: false };
  if (mode === 'build') {
    await ensureBuilt();
    const server = await preview({ ...common, preview: { host: '127.0.0.1', port: 0, strictPort: true, open: false } });
    return { url: urlOf(server.httpServer.address()), close: () => server.close() };
  }
  const server = await createServer({
    ...common,
    server: { host: '127.0.0.1', port: 0, strictPort: true, open: false, hmr: false, watch: null },
  });
  await server.listen();
  return { url: urlOf(server.httpServer?.address()), close: () => server.close() };
}

function urlOf(address: unknown): string {
  const a = address as { address: string; port: number } | null;
  if (!a || typeof a !== 'object') throw new Error('test server is not listening');
  return `http://127.0.0.1:${a.port}/`;
}

// ---------------------------------------------------------------------------------------------------------------
// Build once

let built: Promise<void> | null = null;

/** Build the app into dist/app unless an up-to-date build (same inputs) is already there. */
export function ensureBuilt(): Promise<void> {
  built ??= buildLocked().catch((e) => {
    built = null;
    throw e;
  });
  return built;
}

async function buildLocked(): Promise<void> {
  const stamp = inputsStamp();
  const fresh = () => existsSync(join(APP_DIR, STAMP)) && readFileSync(join(APP_DIR, STAMP), 'utf8') === stamp;
  if (fresh()) return;
  await acquireLock();
  try {
    if (fresh()) return; // another fork built it while we waited
    const t0 = performance.now();
    // Vitest sets NODE_ENV=test; a production build must not see it (deps branch on process.env.NODE_ENV).
    const env = process.env.NODE_ENV;
    process.env.NODE_ENV = 'production';
    try {
      await build({ configFile: CONFIG_FILE, root: ROOT, logLevel: 'warn', mode: 'production', clearScreen: false });
    } finally {
      if (env === undefined) delete process.env.NODE_ENV;
      else process.env.NODE_ENV = env;
    }
    writeFileSync(join(APP_DIR, STAMP), stamp);
    console.log(`[server] vite build → dist/app in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  } finally {
    rmSync(LOCK, { recursive: true, force: true });
  }
}

/** A hash of (path, size, mtime) of every build input. */
function inputsStamp(): string {
  const h = createHash('sha256');
  const visit = (p: string) => {
    if (!existsSync(p)) return;
    const st = statSync(p);
    if (st.isDirectory()) {
      for (const name of readdirSync(p).sort()) visit(join(p, name));
    } else {
      h.update(`${relative(ROOT, p)}\0${st.size}\0${st.mtimeMs}\n`);
    }
  };
  for (const p of BUILD_INPUTS) visit(join(ROOT, p));
  return h.digest('hex');
}

/** mkdir is atomic: the fork that creates the lock builds, the others wait. A lock whose owner died is taken over. */
async function acquireLock(): Promise<void> {
  mkdirSync(dirname(LOCK), { recursive: true });
  const deadline = Date.now() + 240_000;
  for (;;) {
    try {
      mkdirSync(LOCK);
      writeFileSync(join(LOCK, 'pid'), String(process.pid));
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    if (lockOwnerDead()) {
      rmSync(LOCK, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for the build lock ${LOCK}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function lockOwnerDead(): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(join(LOCK, 'pid'), 'utf8'));
  } catch {
    // The owner may be between mkdir and writing its pid; only a lock this old without a pid is stale.
    try {
      return Date.now() - statSync(LOCK).mtimeMs > 10_000;
    } catch {
      return false; // lock vanished: retry
    }
  }
  try {
    process.kill(pid, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Extra directories on the same origin

/** A vite plugin serving each mounted directory, in dev and preview alike. */
function mountPlugin(mounts: Record<string, string>): Plugin {
  const entries = Object.entries(mounts).map(([prefix, dir]) => {
    if (!prefix.startsWith('/') || !prefix.endsWith('/')) throw new Error(`mount prefix must look like '/name/': ${prefix}`);
    const abs = resolve(ROOT, dir);
    if (!existsSync(abs) || !statSync(abs).isDirectory()) throw new Error(`mount directory does not exist: ${abs}`);
    return { prefix, dir: abs };
  });
  const install = (middlewares: Connect.Server, headers: OutgoingHttpHeaders | undefined) => {
    for (const { prefix, dir } of entries) {
      middlewares.use((req: IncomingMessage, res: ServerResponse, next: Connect.NextFunction) => {
        const path = decodeURIComponent((req.url ?? '/').split('?')[0]!);
        if (!path.startsWith(prefix)) return next();
        for (const [k, v] of Object.entries(headers ?? {})) if (v !== undefined) res.setHeader(k, v);
        serveFile(req, res, dir, path.slice(prefix.length));
      });
    }
  };
  return {
    name: 'visualrwkv-test-mounts',
    configureServer: (server) => install(server.middlewares, server.config.server.headers),
    configurePreviewServer: (server) => install(server.middlewares, server.config.preview.headers),
  };
}

const TYPES: Record<string, string> = {
  '.json': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.mjs': 'text/javascript',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
};

/** Serve one file under `dir`: GET/HEAD, single `Range: bytes=` ranges (206/416), no directory listings. */
function serveFile(req: IncomingMessage, res: ServerResponse, dir: string, rel: string): void {
  const file = resolve(dir, rel);
  const fail = (status: number, msg: string) => {
    res.statusCode = status;
    res.setHeader('Content-Type', 'text/plain; charset=utf-8');
    res.end(msg);
  };
  if (req.method !== 'GET' && req.method !== 'HEAD') return fail(405, 'method not allowed');
  if (file !== dir && !file.startsWith(dir + sep)) return fail(403, 'outside the mounted directory');
  let size: number;
  try {
    const st = statSync(file);
    if (!st.isFile()) return fail(404, 'not a file');
    size = st.size;
  } catch {
    return fail(404, 'not found');
  }
  res.setHeader('Accept-Ranges', 'bytes');
  res.setHeader('Content-Type', TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream');
  res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
  res.setHeader('Cache-Control', 'no-cache');
  let start = 0;
  let end = size - 1;
  const range = req.headers.range;
  const m = range ? /^bytes=(\d*)-(\d*)$/.exec(range.trim()) : null; // multi-range requests get the whole file
  if (m && (m[1] || m[2])) {
    if (m[1]) {
      start = Number(m[1]);
      end = m[2] ? Math.min(Number(m[2]), size - 1) : size - 1;
    } else {
      start = Math.max(0, size - Number(m[2])); // suffix: the last N bytes
    }
    if (start >= size || start > end) {
      res.setHeader('Content-Range', `bytes */${size}`);
      return fail(416, 'range not satisfiable');
    }
    res.statusCode = 206;
    res.setHeader('Content-Range', `bytes ${start}-${end}/${size}`);
  } else {
    res.statusCode = 200;
  }
  res.setHeader('Content-Length', String(size === 0 ? 0 : end - start + 1));
  if (req.method === 'HEAD' || size === 0) {
    res.end();
    return;
  }
  createReadStream(file, { start, end }).on('error', () => res.destroy()).pipe(res);
}
