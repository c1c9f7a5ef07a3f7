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
import { retryAsync, type RetryTuning } from './retry-policy';

/**
 * One retry after a transport failure (a stale keep-alive socket), about 200 ms later (the shared retry helper):
 * "no service" stays well under 1 s.
 */
const CHECK_RETRY: RetryTuning = { count: 1, baseDelayMs: 200, maxDelayMs: 200 };

/** Reject with {@link UnauthorizedError}/{@link ForbiddenError} for a refused token, {@link TransportError} for no service. */
export async function checkService(http: HttpContext, signal: AbortSignal): Promise<void> {
  try {
    await retryAsync(() => requestText(http, { method: 'GET', path: 'builds?limit=1', what: 'GET /builds (service check)', signal }), {
      ...CHECK_RETRY,
      signal,
      shouldRetry: (err) => err instanceof TransportError,
    });
  } catch (err) {
    // The abort reason, a refused token, or no service; any other answer proves the service is there.
    if (signal.aborted || err instanceof UnauthorizedError || err instanceof ForbiddenError || err instanceof TransportError) throw err;
  }
}
