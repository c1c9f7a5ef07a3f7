/**
 * Damaged files of the data dir are never deleted: they are moved to `<data-dir>/quarantine/`, with a log line
 * naming them, so that start-up serves everything else and an operator can still look at (or restore) them.
 *
 * @packageDocumentation
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';

/** The quarantine directory of a data dir. */
export function quarantineDir(dataDir: string): string {
  return path.join(dataDir, 'quarantine');
}

/** A fresh name in the quarantine for something called `name` (never overwrites an earlier one). */
async function quarantinePath(dataDir: string, name: string): Promise<string> {
  const dir = quarantineDir(dataDir);
  await fsp.mkdir(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  return path.join(dir, `${name}.${stamp}.${randomBytes(3).toString('hex')}`);
}

/** Move `source` (a file or directory inside the data dir) into the quarantine; returns where it went. */
export async function quarantine(dataDir: string, source: string, why: string): Promise<string> {
  const target = await quarantinePath(dataDir, path.basename(source));
  await fsp.rename(source, target);
  logQuarantine(dataDir, source, target, why);
  return target;
}

/** Write `content` (damaged lines cut out of a journal) into the quarantine as a file; returns its path. */
export async function quarantineContent(dataDir: string, name: string, content: string, why: string): Promise<string> {
  const target = await quarantinePath(dataDir, name);
  const handle = await fsp.open(target, 'wx');
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
  logQuarantine(dataDir, name, target, why);
  return target;
}

function logQuarantine(dataDir: string, source: string, target: string, why: string): void {
  const rel = (p: string): string => (path.isAbsolute(p) ? path.relative(dataDir, p) : p);
  console.error(`rxbuild server: quarantined ${rel(source)} (${why}) to ${rel(target)}`);
}
