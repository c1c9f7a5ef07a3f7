/**
 * The PostgreSQL connection of one node: a pool for queries, versioned migrations applied at start
 * (node-pg-migrate, which holds an advisory lock while it migrates so nodes starting together take turns), and
 * one dedicated `LISTEN` connection whose notifications tell this node about other nodes' writes.
 *
 * @packageDocumentation
 */
import { EventEmitter } from 'node:events';
import * as path from 'node:path';
import { runner } from 'node-pg-migrate';
import { Client, Pool, type PoolClient } from 'pg';

/** Notification channels (payload: a build id). */
export const CHANNELS = {
  /** New events in a build's journal, or its journal became complete. */
  events: 'rxbuild_events',
  /** A cancel was requested for a running build. */
  cancel: 'rxbuild_cancel',
  /** A build was queued. */
  queue: 'rxbuild_queue',
} as const;

/** The SQL migrations (copied next to the compiled code by `npm run build`). */
export const MIGRATIONS_DIR = path.join(__dirname, 'migrations');

/**
 * The advisory lock nodes take turns on while they migrate. node-pg-migrate only *tries* its own lock and fails
 * at once ("Another migration is already running") when another node holds it, so nodes started together would
 * fail to start: each waits for this one first, and then finds the other's lock free.
 */
const MIGRATE_LOCK = '7421063311200191';

/** Apply every migration not applied yet (one node at a time: see {@link MIGRATE_LOCK}). */
export async function migrate(url: string): Promise<void> {
  const client = new Client({ connectionString: url });
  client.on('error', () => undefined); // a dropped connection fails the query in flight, which is enough
  await client.connect();
  try {
    // Released with the session if anything below fails.
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATE_LOCK]);
    await runner({
      dbClient: client,
      dir: MIGRATIONS_DIR,
      direction: 'up',
      migrationsTable: 'rxbuild_migrations',
      count: Infinity,
      log: () => undefined,
    });
  } finally {
    await client.end();
  }
}

/** Run `work` in a transaction on a pooled connection. */
export async function transaction<T>(pool: Pool, work: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  // The pool listens for errors of idle connections only. A checked-out connection that PostgreSQL drops (a
  // restart, a terminated backend) emits 'error', which without a listener would end the whole process; the
  // statement in flight fails anyway, and the connection must not go back to the pool.
  let broken: Error | undefined;
  const onError = (err: Error): void => {
    broken ??= err;
  };
  client.on('error', onError);
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch((rollbackErr: Error) => {
      broken ??= rollbackErr; // never hand out a connection that may still be inside this transaction
    });
    throw err;
  } finally {
    client.off('error', onError);
    client.release(broken);
  }
}

/**
 * The node's `LISTEN` connection. Emits `<channel>` with the payload for each notification, and `reconnected`
 * after the connection was lost and re-established (notifications may have been missed: re-check).
 */
export class Listener extends EventEmitter {
  private client: Client | null = null;
  private closed = false;
  private retry: NodeJS.Timeout | undefined;

  private constructor(private readonly url: string) {
    super();
    this.setMaxListeners(0);
  }

  static async open(url: string): Promise<Listener> {
    const listener = new Listener(url);
    await listener.connect();
    return listener;
  }

  private async connect(): Promise<void> {
    const client = new Client({ connectionString: this.url });
    client.on('notification', (n) => this.emit(n.channel, n.payload ?? ''));
    client.on('error', () => this.lost(client));
    client.on('end', () => this.lost(client));
    await client.connect();
    for (const channel of Object.values(CHANNELS)) await client.query(`LISTEN ${channel}`);
    this.client = client;
  }

  private lost(client: Client): void {
    if (this.client !== client || this.closed) return;
    this.client = null;
    const again = (): void => {
      this.retry = setTimeout(() => {
        if (this.closed) return;
        this.connect().then(() => this.emit('reconnected'), again);
      }, 500);
      this.retry.unref();
    };
    again();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retry);
    const client = this.client;
    this.client = null;
    await client?.end().catch(() => undefined);
  }
}
