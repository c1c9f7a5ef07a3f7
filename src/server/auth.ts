/**
 * Bearer-token authentication and the per-token image namespace.
 *
 * @packageDocumentation
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { HttpError } from './errors';

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/**
 * The registry namespace images of `token` are pushed under: `ns-` and the first 12 hex digits of
 * sha256(token). Stable for a token, reveals nothing usable about it, and a valid Docker path component.
 */
export function namespaceForToken(token: string): string {
  return `ns-${digest(token).toString('hex').slice(0, 12)}`;
}

/**
 * Check `Authorization: Bearer <token>` against the service token (in constant time); throws a 401
 * {@link HttpError} when it is missing or wrong.
 */
export function authenticate(req: IncomingMessage, token: string): void {
  const header = req.headers.authorization;
  const match = typeof header === 'string' ? /^Bearer[ ]+(.+)$/i.exec(header.trim()) : null;
  if (!match) {
    throw new HttpError(401, 'unauthorized', 'Missing bearer token: send "Authorization: Bearer <token>".', {
      'www-authenticate': 'Bearer',
    });
  }
  if (!timingSafeEqual(digest(match[1]), digest(token))) {
    throw new HttpError(401, 'unauthorized', 'The bearer token is not valid for this service.', {
      'www-authenticate': 'Bearer error="invalid_token"',
    });
  }
}
