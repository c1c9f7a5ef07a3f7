/**
 * The OCI runtime buildah runs RUN steps with in `outbound` network mode: a shell script that passes every
 * call on to `runc`, and, on `create`, first rewrites the container's `config.json` so that it joins the
 * build's own user and network namespaces (`build-network.ts`) instead of creating fresh ones.
 *
 * Why: buildah 1.28 cannot join a network namespace that belongs to another user namespace (runc then fails
 * to mount `/sys`), and it ignores a user-namespace path. So buildah is told `--network host` (it then
 * creates no network namespace, writes `/etc/resolv.conf` from `--dns`, and bind-mounts the host's `/sys`),
 * and the shim puts in the build's namespaces and a fresh `sysfs` for `/sys`.
 *
 * It fails closed: a `create` without `RXBUILD_SANDBOX_NS`, or with a config it does not recognise, exits
 * non-zero and the RUN step fails; it never runs a container in the host's network namespace.
 *
 * @packageDocumentation
 */
import { chmodSync, writeFileSync } from 'node:fs';

/** The environment variable naming the namespace directory (`/proc/<holder pid>/ns`) for the shim. */
export const SANDBOX_NS_ENV = 'RXBUILD_SANDBOX_NS';

/** The config.json rewrite, run by `node -e` (argv: config file, namespace directory). */
const REWRITE = `
const fs = require('fs');
const [file, nsDir] = process.argv.slice(1);
const fail = (why) => { process.stderr.write('rxbuild sandbox: ' + why + '\\n'); process.exit(1); };
const c = JSON.parse(fs.readFileSync(file, 'utf8'));
const linux = c.linux || fail('config.json has no linux section');
if (!Array.isArray(linux.namespaces) || !linux.namespaces.some((n) => n.type === 'pid')) fail('no pid namespace');
if (!Array.isArray(linux.uidMappings) || linux.uidMappings.some((m) => m.hostID === 0)) fail('no unprivileged id mapping');
linux.namespaces = linux.namespaces.filter((n) => n.type !== 'user' && n.type !== 'network');
linux.namespaces.push({ type: 'user', path: nsDir + '/user' }, { type: 'network', path: nsDir + '/net' });
const sys = (c.mounts || []).find((m) => m.destination === '/sys');
if (sys) Object.assign(sys, { type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] });
fs.writeFileSync(file, JSON.stringify(c));
`;

/** The shim's text; `nodePath` runs the rewrite, `runcPath` is the real runtime. */
export function runtimeShimText(nodePath: string, runcPath: string): string {
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  return [
    '#!/bin/sh',
    '# Written by rxbuild (buildah engine): joins RUN containers to the build\'s namespaces. Regenerated at start.',
    'bundle=""; create=""; prev=""',
    'for a in "$@"; do',
    '  [ "$prev" = "--bundle" ] && bundle="$a"',
    '  case "$a" in --bundle=*) bundle="${a#--bundle=}" ;; create|run) [ -z "$create" ] && create="$a" ;; esac',
    '  prev="$a"',
    'done',
    'if [ -n "$create" ]; then',
    `  [ -n "$${SANDBOX_NS_ENV}" ] || { echo "rxbuild sandbox: ${SANDBOX_NS_ENV} is not set" >&2; exit 1; }`,
    '  [ -n "$bundle" ] || bundle="$(pwd)"',
    `  ${q(nodePath)} -e ${q(REWRITE)} "$bundle/config.json" "$${SANDBOX_NS_ENV}" || exit 1`,
    'fi',
    `exec ${q(runcPath)} "$@"`,
    '',
  ].join('\n');
}

/** Write the shim to `file` (mode 0755). */
export function writeRuntimeShim(file: string, nodePath = process.execPath, runcPath = 'runc'): void {
  writeFileSync(file, runtimeShimText(nodePath, runcPath));
  chmodSync(file, 0o755);
}
