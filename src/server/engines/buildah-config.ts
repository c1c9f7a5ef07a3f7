/**
 * The configuration files the buildah engine hands to buildah, all written under the service's data dir
 * (never to /etc): a registries.conf that makes our loopback registry insecure (plain HTTP) and mirrors Docker
 * Hub to it, and a signature policy that accepts unsigned images.
 *
 * @packageDocumentation
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/** A `host:port` we accept as a registry address (no scheme, no path). */
const REGISTRY_ADDRESS_RE = /^[A-Za-z0-9.-]+(?::\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::\d{1,5})?$/;

/** Throw unless `address` looks like `host:port` (it is written into TOML, so it must be plain). */
export function assertRegistryAddress(address: string): void {
  if (!REGISTRY_ADDRESS_RE.test(address)) {
    throw new Error(`invalid registry address ${JSON.stringify(address)}: expected host:port`);
  }
}

/**
 * The registries.conf text for `registry`:
 * - `registry` is insecure (HTTP, no TLS verification) for pulls and pushes;
 * - `docker.io` is mirrored to it, so `FROM busybox` (→ `docker.io/library/busybox`) is pulled from
 *   `<registry>/library/busybox` without any internet access. If the mirror lacks an image, buildah falls
 *   back to Docker Hub, which fails offline with a name-resolution error naming the image;
 * - short names resolve through Docker Hub (and so through the mirror), with `busybox` aliased explicitly so
 *   it does not depend on the distribution's shortnames.conf.
 */
export function registriesConfText(registry: string): string {
  assertRegistryAddress(registry);
  return [
    '# Written by rxbuild (buildah engine). Regenerated at every start; edits are lost.',
    'unqualified-search-registries = ["docker.io"]',
    'short-name-mode = "permissive"',
    '',
    '[aliases]',
    '"busybox" = "docker.io/library/busybox"',
    '',
    '[[registry]]',
    `location = "${registry}"`,
    'insecure = true',
    '',
    '[[registry]]',
    'prefix = "docker.io"',
    'location = "docker.io"',
    '[[registry.mirror]]',
    `location = "${registry}"`,
    'insecure = true',
    '',
  ].join('\n');
}

/** Write {@link registriesConfText} to `file` (creating its directory). */
export function writeRegistriesConf(file: string, registry: string): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, registriesConfText(registry));
}

/** A signature policy that accepts any image: everything we pull comes from our own loopback registry. */
export const SIGNATURE_POLICY = JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }, null, 2) + '\n';

/** Write {@link SIGNATURE_POLICY} to `file` (creating its directory). */
export function writeSignaturePolicy(file: string): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, SIGNATURE_POLICY);
}
