/**
 * Snapshots and aliases in PostgreSQL (`rxbuild_snapshots`, `rxbuild_aliases`), shared by every node. An alias
 * is one row (alias → holder), so moving it is one atomic update; alias and retire lock the snapshot's row, so
 * an alias racing a retire ends in an order that explains both, as with the file store's serialised journal.
 *
 * @packageDocumentation
 */
import { randomBytes } from 'node:crypto';
import type { Pool, PoolClient } from 'pg';
import { SNAPSHOT_ID_RE, type SnapshotWire } from '../../shared/snapshot-wire';
import { snapshotStatus, snapshotWire, type ChangeRefusal, type StoredSnapshot } from '../snapshots-store';
import type { NewSnapshot, SnapshotStorage } from '../storage';
import { transaction } from './db';

type Row = Omit<StoredSnapshot, 'seq'> & { seq: string; aliases: string[] };

const SELECT = `
  SELECT s.*, coalesce((SELECT array_agg(a.alias ORDER BY a.seq) FROM rxbuild_aliases a WHERE a.snapshot_id = s.snapshot_id), '{}') AS aliases
  FROM rxbuild_snapshots s`;

function wire(row: Row): SnapshotWire {
  return snapshotWire(row, row.aliases);
}

/** The shared snapshot store. */
export class PgSnapshotStorage implements SnapshotStorage {
  /** `pool` belongs to the caller (the database is migrated by the build store first). */
  constructor(private readonly pool: Pool) {}

  private async one(db: Pool | PoolClient, where: string, param: unknown): Promise<SnapshotWire | undefined> {
    const r = await db.query<Row>(`${SELECT} WHERE ${where}`, [param]);
    return r.rows[0] ? wire(r.rows[0]) : undefined;
  }

  get(id: string): Promise<SnapshotWire | undefined> {
    return SNAPSHOT_ID_RE.test(id) ? this.one(this.pool, 's.snapshot_id = $1', id) : Promise.resolve(undefined);
  }

  getByAlias(alias: string): Promise<SnapshotWire | undefined> {
    return this.one(this.pool, 's.snapshot_id = (SELECT snapshot_id FROM rxbuild_aliases WHERE alias = $1)', alias);
  }

  async page(beforeSeq: number | undefined, limit: number): Promise<{ items: SnapshotWire[]; nextBeforeSeq: number | null }> {
    const r = await this.pool.query<Row>(`${SELECT} WHERE $1::bigint IS NULL OR s.seq < $1 ORDER BY s.seq DESC LIMIT $2`, [
      beforeSeq ?? null,
      limit + 1,
    ]);
    const rows = r.rows.slice(0, limit);
    const more = r.rows.length > limit;
    return { items: rows.map(wire), nextBeforeSeq: more ? Number(rows[rows.length - 1].seq) : null };
  }

  async create(input: NewSnapshot): Promise<{ snapshot: SnapshotWire; reused: boolean }> {
    const id = `s_${randomBytes(12).toString('hex')}`;
    const inserted = await this.pool.query(
      `INSERT INTO rxbuild_snapshots (snapshot_id, image_ref, digest, architecture, tags, ttl, created_at, idempotency_key)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (idempotency_key) DO NOTHING`,
      [id, input.imageRef, input.digest, input.architecture, input.tags, input.ttl, new Date().toISOString(), input.idempotencyKey],
    );
    if (inserted.rowCount === 1) return { snapshot: (await this.get(id))!, reused: false };
    return { snapshot: (await this.one(this.pool, 's.idempotency_key = $1', input.idempotencyKey))!, reused: true };
  }

  alias(id: string, alias: string): Promise<SnapshotWire | ChangeRefusal> {
    if (!SNAPSHOT_ID_RE.test(id)) return Promise.resolve('not_found');
    return transaction(this.pool, async (c) => {
      const r = await c.query<StoredSnapshot>('SELECT * FROM rxbuild_snapshots WHERE snapshot_id = $1 FOR UPDATE', [id]);
      if (r.rows.length === 0) return 'not_found';
      const status = snapshotStatus(r.rows[0]);
      if (status !== 'active') return status;
      await c.query(
        `INSERT INTO rxbuild_aliases (alias, snapshot_id) VALUES ($1, $2)
         ON CONFLICT (alias) DO UPDATE SET snapshot_id = excluded.snapshot_id, seq = nextval(pg_get_serial_sequence('rxbuild_aliases', 'seq'))
         WHERE rxbuild_aliases.snapshot_id <> excluded.snapshot_id`,
        [alias, id],
      );
      return (await this.one(c, 's.snapshot_id = $1', id))!;
    });
  }

  async retire(id: string): Promise<SnapshotWire | 'not_found'> {
    if (!SNAPSHOT_ID_RE.test(id)) return 'not_found';
    await this.pool.query('UPDATE rxbuild_snapshots SET retired_at = coalesce(retired_at, $2) WHERE snapshot_id = $1', [id, new Date().toISOString()]);
    return (await this.get(id)) ?? 'not_found';
  }

  async close(): Promise<void> {
    // The pool is the build store's.
  }
}
