/**
 * The PostgreSQL store's entry: the build store, snapshots and the shared content store on one database. The
 * service loads this module only when it is given a database (see `loadPgStores` in ../pg-loader.ts), because
 * `pg` and `node-pg-migrate` are optional peer dependencies that library users do not install.
 *
 * @packageDocumentation
 */
import * as path from 'node:path';
import type { BuildStore, SnapshotStorage } from '../storage';
import type { ContentStore } from '../content-store';
import { PgBuildStore, type PgBuildStoreOptions } from './build-store';
import { PgContentStore } from './content-store';
import { PgSnapshotStorage } from './snapshots';

export interface PgStores {
  builds: BuildStore;
  snapshots: SnapshotStorage;
  contents: ContentStore;
}

/** Open (and migrate) the database; contents by content go into it too, so any node can assemble what another received. */
export async function openPgStores(options: PgBuildStoreOptions & { contextCacheBytes?: number }): Promise<PgStores> {
  const builds = await PgBuildStore.open(options);
  const contents = new PgContentStore(builds.db, path.join(options.dataDir, 'contents-tmp'), { capBytes: options.contextCacheBytes });
  return { builds, snapshots: new PgSnapshotStorage(builds.db), contents };
}
