/**
 * Static serving of the web page (`npm run build` puts it in `dist/web`): `GET /` is its `index.html`, other
 * paths are files of that directory. No token is needed: the page asks for one and sends it on API calls.
 *
 * Only `GET`/`HEAD`, only regular files inside the web dir: the path is decoded once, any `..`, `.`, empty,
 * backslash or NUL segment is refused, and the resolved real path must stay inside the dir (no symlink out).
 *
 * @packageDocumentation
 */
import { createReadStream, promises as fsp } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { HttpError } from './errors';

/**
 * The page's default location: `<package>/dist/web`, from the compiled `dist/server/web.js` as from
 * `src/server/web.ts` (specs run the sources).
 */
export function defaultWebDir(): string {
  return path.resolve(__dirname, '..', '..', 'dist', 'web');
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
};

/**
 * Sent with every page file. The page only talks to its own origin, runs only its own script, and never
 * needs inline code; a log line can therefore never run as script even if it were rendered as HTML.
 */
const PAGE_HEADERS: Record<string, string> = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  // Revalidate every time: a rebuilt page is picked up at once.
  'cache-control': 'no-cache',
};

function notFound(pathname: string): HttpError {
  return new HttpError(404, 'not_found', `No route GET ${pathname}.`);
}

/** The file under `root` that `pathname` names, or `null` when the path is not acceptable. */
function resolveSafe(root: string, pathname: string): string | null {
  let decoded: string;
  try {
    decoded = decodeURIComponent(pathname);
  } catch {
    return null;
  }
  const segments = decoded.split('/').slice(1);
  if (segments.length === 1 && segments[0] === '') return path.join(root, 'index.html');
  for (const s of segments) {
    if (s === '' || s === '.' || s === '..' || s.includes('\\') || s.includes('\0')) return null;
  }
  return path.join(root, ...segments);
}

/**
 * Answer `GET`/`HEAD` of a page file from `webDir`. Throws an {@link HttpError}: 404 for anything that is not
 * a file there (`web_not_built` when the page was never built), 405 for other methods.
 */
export async function serveWeb(req: IncomingMessage, res: ServerResponse, pathname: string, webDir: string): Promise<void> {
  const method = req.method ?? 'GET';
  if (method !== 'GET' && method !== 'HEAD') throw new HttpError(404, 'not_found', `No route ${method} ${pathname}.`);
  const root = path.resolve(webDir);
  const file = resolveSafe(root, pathname);
  if (file === null) throw notFound(pathname);
  let realRoot: string;
  try {
    realRoot = await fsp.realpath(root);
  } catch {
    if (pathname === '/' || pathname === '/index.html') {
      throw new HttpError(404, 'web_not_built', `The web page is not built (no ${root}): run "npm run build".`);
    }
    throw notFound(pathname);
  }
  let real: string;
  let size: number;
  try {
    real = await fsp.realpath(file);
    const st = await fsp.stat(real);
    if (!st.isFile()) throw notFound(pathname);
    size = st.size;
  } catch (err) {
    if (err instanceof HttpError) throw err;
    if (pathname === '/' || pathname === '/index.html') {
      throw new HttpError(404, 'web_not_built', `The web page is not built (no index.html in ${root}): run "npm run build".`);
    }
    throw notFound(pathname);
  }
  if (real !== realRoot && !real.startsWith(realRoot + path.sep)) throw notFound(pathname);
  const type = CONTENT_TYPES[path.extname(real).toLowerCase()] ?? 'application/octet-stream';
  res.writeHead(200, { 'content-type': type, 'content-length': size, ...PAGE_HEADERS });
  if (method === 'HEAD') {
    res.end();
    return;
  }
  await pipeline(createReadStream(real), res);
}
