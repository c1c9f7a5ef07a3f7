/**
 * The content store of contexts by content in PostgreSQL, shared by every node: a content one node received
 * is present, for its namespace, on every node, so the `/contents/missing` → `/contents` → build-by-manifest
 * exchange may reach three different nodes behind a balancer. Contents are rows per (namespace, digest) with
 * their bytes in 1 MiB parts; namespaces stay as separate as in {@link FileContentStore}: every query is keyed
 * by the namespace.
 *
 * Size cap: least recently used contents go when the total passes the cap, but never one used within
 * {@link RECENT_MS} — that is what holds a build's contents across nodes while it is assembled (a hold on one
 * node cannot be seen by another node's eviction otherwise), so the total may pass the cap for that long.
 *
 * @packageDocumentation
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { Pool } from 'pg';
import { DEFAULT_CONTEXT_CACHE_BYTES, checkContentKey, missingContent, receiveVerified, type ContentStore } from '../content-store';
import { transaction } from './db';

/** Bytes per stored part. */
const PART_BYTES = 1024 * 1024;
/** A content used this recently is never evicted (see the module comment). */
export const RECENT_MS = 15 * 60 * 1000;

/** Options of {@link PgContentStore}. */
export interface PgContentStoreOptions {
  /** Cap of the store, shared by all nodes (default {@link DEFAULT_CONTEXT_CACHE_BYTES}). */
  capBytes?: number;
  /** See {@link RECENT_MS}. */
  recentMs?: number;
}

/** A {@link ContentStore} in the database at `pool`; `tmpDir` (local) holds uploads while they are checked. */
export class PgContentStore implements ContentStore {
  private readonly capBytes: number;
  private readonly recentMs: number;

  constructor(
    private readonly pool: Pool,
    private readonly tmpDir: string,
    options: PgContentStoreOptions = {},
  ) {
    this.capBytes = options.capBytes ?? DEFAULT_CONTEXT_CACHE_BYTES;
    this.recentMs = options.recentMs ?? RECENT_MS;
  }

  async missing(namespace: string, digests: readonly string[]): Promise<string[]> {
    const wanted = [...new Set(digests)];
    const hexes = wanted.map((d) => checkContentKey(namespace, d));
    const r = await this.pool.query<{ digest: string }>(
      'UPDATE rxbuild_contents SET used_at = now() WHERE namespace = $1 AND digest = ANY($2) RETURNING digest',
      [namespace, hexes],
    );
    const present = new Set(r.rows.map((row) => row.digest));
    return wanted.filter((_, i) => !present.has(hexes[i]));
  }

  async put(namespace: string, digest: string, input: AsyncIterable<Buffer>): Promise<void> {
    const hex = checkContentKey(namespace, digest);
    await fsp.mkdir(this.tmpDir, { recursive: true });
    const tmp = path.join(this.tmpDir, randomBytes(12).toString('hex'));
    try {
      const size = await receiveVerified(input, tmp, digest);
      await transaction(this.pool, async (c) => {
        // Two nodes storing the same content at once: the second waits for the first's row, then keeps it.
        const fresh = await c.query(
          `INSERT INTO rxbuild_contents (namespace, digest, size) VALUES ($1, $2, $3)
           ON CONFLICT (namespace, digest) DO UPDATE SET used_at = now() RETURNING (xmax = 0) AS inserted`,
          [namespace, hex, size],
        );
        if (!(fresh.rows[0] as { inserted: boolean }).inserted) return;
        let part = 0;
        for await (const data of createReadStream(tmp, { highWaterMark: PART_BYTES })) {
          await c.query('INSERT INTO rxbuild_content_parts (namespace, digest, part, data) VALUES ($1, $2, $3, $4)', [namespace, hex, part++, data]);
        }
      });
    } finally {
      await fsp.rm(tmp, { force: true });
    }
    await this.evict();
  }

  async copyTo(namespace: string, digest: string, dest: string, mode: number): Promise<number> {
    const hex = checkContentKey(namespace, digest);
    const r = await this.pool.query<{ size: string; parts: number }>(
      `UPDATE rxbuild_contents SET used_at = now() WHERE namespace = $1 AND digest = $2
       RETURNING size, (SELECT count(*)::int FROM rxbuild_content_parts p WHERE p.namespace = $1 AND p.digest = $2) AS parts`,
      [namespace, hex],
    );
    if (r.rows.length === 0) throw missingContent(1);
    const out = await fsp.open(dest, 'wx', mode); // never replaces whatever might be at `dest`
    try {
      for (let part = 0; part < r.rows[0].parts; part++) {
        const p = await this.pool.query<{ data: Buffer }>(
          'SELECT data FROM rxbuild_content_parts WHERE namespace = $1 AND digest = $2 AND part = $3',
          [namespace, hex, part],
        );
        if (p.rows.length === 0) throw missingContent(1); // evicted under us
        await out.write(p.rows[0].data);
      }
    } finally {
      await out.close();
    }
    await fsp.chmod(dest, mode);
    return Number(r.rows[0].size);
  }

  hold(namespace: string, digests: readonly string[]): () => void {
    // Marking them used keeps every node's eviction off them for RECENT_MS (the caller copies them at once).
    const hexes = [...new Set(digests)].map((d) => checkContentKey(namespace, d));
    void this.pool
      .query('UPDATE rxbuild_contents SET used_at = now() WHERE namespace = $1 AND digest = ANY($2)', [namespace, hexes])
      .catch(() => undefined);
    return () => undefined;
  }

  /** Remove least recently used contents (not used within RECENT_MS) until the total fits the cap. */
  private async evict(): Promise<void> {
    await this.pool.query(
      `DELETE FROM rxbuild_contents c USING (
         SELECT namespace, digest, used_at, sum(size) OVER (ORDER BY used_at DESC, namespace, digest) AS newer_total FROM rxbuild_contents
       ) t
       WHERE c.namespace = t.namespace AND c.digest = t.digest AND t.newer_total > $1
         AND t.used_at < now() - make_interval(secs => $2::double precision / 1000)`,
      [this.capBytes, this.recentMs],
    );
  }
}
