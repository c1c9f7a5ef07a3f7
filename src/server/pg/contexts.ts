/**
 * Build contexts in PostgreSQL (`rxbuild_contexts`), so that the node that runs a build need not be the one
 * that received its upload: the validated, unpacked context is packed again as tar.gz and stored in 1 MiB
 * parts in the same transaction as the build; the node that claims the build unpacks it with the same hostile-
 * input extractor as an upload; the parts are deleted when the build ends (docs/deploy.md says why here and
 * not in the registry).
 *
 * @packageDocumentation
 */
import { createReadStream, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import type { Pool, PoolClient } from 'pg';
import * as tar from 'tar-stream';
import { extractContext } from '../context-extract';

/** Bytes per stored part. */
const PART_BYTES = 1024 * 1024;

/** Every entry under `root` (directories before what is in them), relative, with `/` separators. */
async function walk(root: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fsp.readdir(path.join(root, rel), { withFileTypes: true })) {
    const name = rel === '' ? entry.name : `${rel}/${entry.name}`;
    out.push(name);
    if (entry.isDirectory()) out.push(...(await walk(root, name)));
  }
  return out;
}

async function packEntries(pack: tar.Pack, root: string): Promise<void> {
  for (const rel of await walk(root)) {
    const abs = path.join(root, rel);
    const st = await fsp.lstat(abs);
    const mode = st.mode & 0o777;
    if (st.isDirectory()) {
      pack.entry({ name: rel, type: 'directory', mode, mtime: st.mtime });
    } else if (st.isSymbolicLink()) {
      pack.entry({ name: rel, type: 'symlink', linkname: await fsp.readlink(abs), mode, mtime: st.mtime });
    } else if (st.isFile()) {
      const entry = pack.entry({ name: rel, size: st.size, mode, mtime: st.mtime });
      await pipeline(createReadStream(abs), entry);
    }
  }
  pack.finalize();
}

/** Store the unpacked context in `dir` for build `buildId`, inside the caller's transaction. */
export async function storeContext(client: PoolClient, buildId: string, dir: string): Promise<void> {
  const pack = tar.pack();
  const packing = packEntries(pack, dir).catch((err: unknown) => pack.destroy(err as Error));
  let part = 0;
  let pending: Buffer[] = [];
  let size = 0;
  const write = async (): Promise<void> => {
    await client.query('INSERT INTO rxbuild_contexts (build_id, part, data) VALUES ($1, $2, $3)', [buildId, part++, Buffer.concat(pending)]);
    pending = [];
    size = 0;
  };
  for await (const chunk of pack.pipe(createGzip())) {
    pending.push(chunk as Buffer);
    size += (chunk as Buffer).length;
    if (size >= PART_BYTES) await write();
  }
  await packing;
  if (size > 0 || part === 0) await write();
}

/** Unpack build `buildId`'s stored context into the empty directory `dir`. */
export async function loadContext(pool: Pool, buildId: string, dir: string): Promise<void> {
  const count = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM rxbuild_contexts WHERE build_id = $1', [buildId]);
  const parts = count.rows[0].n;
  if (parts === 0) throw new Error(`the context of ${buildId} is not in the database`);
  async function* read(): AsyncGenerator<Buffer> {
    for (let part = 0; part < parts; part++) {
      const r = await pool.query<{ data: Buffer }>('SELECT data FROM rxbuild_contexts WHERE build_id = $1 AND part = $2', [buildId, part]);
      yield r.rows[0].data;
    }
  }
  // Checked as hostile as an upload: the database is shared, so it is one more place input comes from.
  await extractContext(Readable.from(read()), dir, { maxUnpackedBytes: Number.MAX_SAFE_INTEGER, maxEntries: Number.MAX_SAFE_INTEGER });
}

/** Forget the stored context of a build that ended. */
export async function dropContext(db: Pool | PoolClient, buildId: string): Promise<void> {
  await db.query('DELETE FROM rxbuild_contexts WHERE build_id = $1', [buildId]);
}
