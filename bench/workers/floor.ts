/**
 * Worker: load the rxbuild client and do nothing. Its peak RSS is the floor under every client figure.
 *
 * @packageDocumentation
 */
import { createClient } from '../../src/client';
import { workerMain } from '../lib/worker';

workerMain<Record<string, never>, { loaded: boolean }>(async () => ({ loaded: typeof createClient === 'function' }));
