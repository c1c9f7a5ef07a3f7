/**
 * The machine a run was measured on, for the report.
 *
 * @packageDocumentation
 */
import { execFileSync } from 'node:child_process';
import * as os from 'node:os';

/** One `label: value` per line. */
export interface MachineInfo {
  [label: string]: string;
}

function firstLine(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'pipe'] }).split('\n')[0].trim();
  } catch {
    return 'not installed';
  }
}

/** nproc, CPU model, memory, kernel, node, and the versions of the external tools the benches use. */
export function describeMachine(): MachineInfo {
  const cpus = os.cpus();
  return {
    nproc: firstLine('nproc', []),
    cpu: cpus[0]?.model ?? 'unknown',
    memory: `${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    kernel: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    buildah: firstLine('buildah', ['--version']),
    curl: firstLine('curl', ['--version']),
    tar: firstLine('tar', ['--version']),
    gzip: firstLine('gzip', ['--version']),
  };
}
