/**
 * The PostgreSQL migrations move existing data: a database last migrated by the first release (one row per
 * journal event) keeps every build's journal, event for event, once the chunked journal's migration ran.
 */
import { EventEmitter } from 'node:events';
import { Client, Pool } from 'pg';
import { runner } from 'node-pg-migrate';
import { MIGRATIONS_DIR, migrate } from '../src/server/pg/db';
import { PgJournalSource } from '../src/server/pg/journal';
import { startPostgres, type ThrowawayPostgres } from './helpers/postgres';

let pg: ThrowawayPostgres;
beforeAll(async () => {
  pg = await startPostgres();
}, 120_000);
afterAll(async () => {
  await pg?.stop();
});

it('keeps the journals of a database from before the chunked journal', async () => {
  const client = new Client({ connectionString: pg.url });
  await client.connect();
  try {
    // The first migration only, as the first release left the database.
    await runner({ dbClient: client, dir: MIGRATIONS_DIR, direction: 'up', migrationsTable: 'rxbuild_migrations', count: 1, log: () => undefined });
    const id = 'b_000000000000000000000001';
    await client.query(`INSERT INTO rxbuild_builds (build_id, created_at, status, sealed, stored) VALUES ($1, '2026-01-01T00:00:00.000Z', 'succeeded', true, '{}')`, [id]);
    const events = Array.from({ length: 2500 }, (_, i) => ({ seq: i + 1, type: 'log', data: `old line ${i + 1}`, time: '2026-01-01T00:00:01.000Z' }));
    await client.query(`INSERT INTO rxbuild_events (build_id, seq, event) SELECT $1, s, $2::jsonb->>(s - 1) FROM generate_series(1, $3::int) AS s`, [
      id,
      JSON.stringify(events.map((e) => JSON.stringify(e))),
      events.length,
    ]);
  } finally {
    await client.end();
  }

  await migrate(pg.url);
  const pool = new Pool({ connectionString: pg.url });
  try {
    const source = new PgJournalSource(pool, 'b_000000000000000000000001', new EventEmitter());
    const first = await source.read(0, 2000);
    const rest = await source.read(2000, 2000);
    expect([...first.events, ...rest.events]).toEqual(
      Array.from({ length: 2500 }, (_, i) => ({ seq: i + 1, type: 'log', data: `old line ${i + 1}`, time: '2026-01-01T00:00:01.000Z' })),
    );
    expect(rest.complete).toBe(true);
    await source.close();
  } finally {
    await pool.end();
  }
});
