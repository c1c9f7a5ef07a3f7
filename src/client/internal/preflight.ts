/**
 * The service check before packing: one cheap authenticated request, so that a wrong token or a service that is
 * not there is reported at once instead of after packing (and uploading) a large context (issue 12).
 *
 * `GET /builds?limit=1` is an rxbuild listing. A reference service may not have it: any answer other than 401/403
 * proves the service is there, and the upload then goes ahead (its own retries deal with a busy service).
 *
 * @packageDocumentation
 */
import { ForbiddenError, TransportError, UnauthorizedError } from '../errors';
import { requestText, type HttpContext } from './transport';

/** One retry after a transport failure (a stale keep-alive socket), this soon: "no service" stays well under 1 s. */
const RETRY_AFTER_MS = 200;

/** Reject with {@link UnauthorizedError}/{@link ForbiddenError} for a refused token, {@link TransportError} for no service. */
export async function checkService(http: HttpContext, signal: AbortSignal): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await requestText(http, { method: 'GET', path: 'builds?limit=1', what: 'GET /builds (service check)', signal });
      return;
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      if (err instanceof UnauthorizedError || err instanceof ForbiddenError) throw err;
      if (!(err instanceof TransportError)) return;
      if (attempt >= 1) throw err;
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, RETRY_AFTER_MS);
      signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
    });
    signal.throwIfAborted();
  }
}
