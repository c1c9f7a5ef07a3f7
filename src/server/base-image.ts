/**
 * The offline base image: `<registry>/library/busybox:latest`, built `FROM scratch` from Debian's static
 * busybox (`busybox-static`), with a symlink for every applet (`/bin/sh`, `/bin/ls`, …), `/tmp`, `/root` and a
 * minimal `/etc/passwd`. The buildah engine's registries.conf mirrors `docker.io` to our registry, so a
 * Dockerfile's `FROM busybox` resolves to this image without any internet access.
 *
 * @packageDocumentation
 */
import { copyFileSync, mkdtempSync, openSync, readSync, closeSync, rmSync, writeFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { BuildStepWire } from '../shared/wire';
import { createBuildahEngine, type BuildahEngine } from './engines/buildah';
import { registryManifestDigest } from './registry';

/** Repository and tag of the base image in our registry (what `docker.io/library/busybox` mirrors to). */
export const BASE_IMAGE_REPOSITORY = 'library/busybox';
export const BASE_IMAGE_TAG = 'latest';

/** Where Debian's busybox-static installs its binary, in order of preference. */
const BUSYBOX_CANDIDATES = ['/bin/busybox', '/usr/bin/busybox'];

/** The Dockerfile of the base image. The busybox binary is the only file in its context. */
export const BASE_IMAGE_DOCKERFILE = [
  '# rxbuild offline base image: static busybox with its applets, built FROM scratch',
  'FROM scratch',
  'COPY busybox /bin/busybox',
  'RUN ["/bin/busybox", "sh", "-c", "/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin /tmp /root /etc /var && ' +
    "/bin/busybox chmod 1777 /tmp && /bin/busybox --install -s && " +
    "echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd && echo 'root:x:0:' > /etc/group\"]",
  'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  'LABEL org.opencontainers.image.title="rxbuild busybox base" org.opencontainers.image.source="busybox-static"',
  'CMD ["sh"]',
  '',
].join('\n');

/** Options of {@link ensureBaseImage}. */
export interface EnsureBaseImageOptions {
  /** `host:port` of the registry (plain HTTP). */
  registry: string;
  /** The buildah engine's storage dir (see `createBuildahEngine`). */
  storageDir: string;
  /** The static busybox binary. Default: the first of `/bin/busybox`, `/usr/bin/busybox`. */
  busybox?: string;
  /** Build with this engine (e.g. the service's); by default a short-lived one on `storageDir`. */
  engine?: BuildahEngine;
  /** Build output, line by line, when the image has to be built. */
  log?: (line: string) => void;
}

/** Where the base image is, and whether this call built it. */
export interface BaseImage {
  imageRef: string;
  digest: string;
  built: boolean;
}

/**
 * True when `file` is an ELF executable without a program interpreter, i.e. statically linked (a dynamic
 * busybox would not run in a `FROM scratch` image). Reads only the ELF and program headers.
 */
export function isStaticElf(file: string): boolean {
  const fd = openSync(file, 'r');
  try {
    const header = Buffer.alloc(64);
    if (readSync(fd, header, 0, 64, 0) < 52) return false;
    if (header.readUInt32BE(0) !== 0x7f454c46) return false; // "\x7fELF"
    const is64 = header[4] === 2;
    const le = header[5] === 1;
    const u16 = (b: Buffer, o: number): number => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
    const u32 = (b: Buffer, o: number): number => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
    const phoff = is64 ? Number(le ? header.readBigUInt64LE(32) : header.readBigUInt64BE(32)) : u32(header, 28);
    const phentsize = u16(header, is64 ? 54 : 42);
    const phnum = u16(header, is64 ? 56 : 44);
    const entry = Buffer.alloc(phentsize);
    for (let i = 0; i < phnum; i++) {
      if (readSync(fd, entry, 0, phentsize, phoff + i * phentsize) < 4) return false;
      if (u32(entry, 0) === 3 /* PT_INTERP */) return false;
    }
    return true;
  } finally {
    closeSync(fd);
  }
}

/** Find the static busybox binary, or throw an error that says what to install. */
export function findStaticBusybox(preferred?: string): string {
  const candidates = preferred ? [preferred] : BUSYBOX_CANDIDATES;
  for (const path of candidates) {
    if (existsSync(path) && isStaticElf(path)) return path;
  }
  throw new Error(
    `no statically linked busybox found (looked at ${candidates.join(', ')}); ` +
      'install it with: apt-get install -y busybox-static',
  );
}

/**
 * Make sure `<registry>/library/busybox:latest` exists: nothing to do when the registry already has it,
 * otherwise build it with buildah and push it. Resolves where it is and whether it was built now.
 */
export async function ensureBaseImage(options: EnsureBaseImageOptions): Promise<BaseImage> {
  const imageRef = `${options.registry}/${BASE_IMAGE_REPOSITORY}:${BASE_IMAGE_TAG}`;
  let existing: string | null;
  try {
    existing = await registryManifestDigest(options.registry, BASE_IMAGE_REPOSITORY, BASE_IMAGE_TAG);
  } catch (err) {
    throw new Error(`cannot reach the registry at ${options.registry} (plain HTTP): ${(err as Error).message}`, { cause: err });
  }
  if (existing) return { imageRef, digest: existing, built: false };

  const busybox = findStaticBusybox(options.busybox);
  mkdirSync(options.storageDir, { recursive: true });
  const scratch = mkdtempSync(join(options.storageDir, 'base-image-'));
  // A borrowed engine stays open; our own never sweeps storage that the service's engine may be using.
  const engine =
    options.engine ?? createBuildahEngine({ storageDir: options.storageDir, registry: options.registry, sweepStorage: false });
  try {
    const contextDir = join(scratch, 'context');
    mkdirSync(contextDir);
    copyFileSync(busybox, join(contextDir, 'busybox'));
    writeFileSync(join(contextDir, 'Dockerfile'), BASE_IMAGE_DOCKERFILE);
    const log = options.log ?? ((): void => undefined);
    const result = await engine.run(
      {
        buildId: 'base-image-busybox',
        contextDir,
        dockerfile: 'Dockerfile',
        imageName: 'busybox:latest',
        imageRef,
        buildArgs: {},
        nydus: false,
        cacheKey: null,
        workDir: join(scratch, 'work'),
      },
      { log, step: (_step: BuildStepWire) => undefined },
      new AbortController().signal,
    );
    return { imageRef: result.imageRef, digest: result.digest, built: true };
  } catch (err) {
    throw new Error(`could not build the base image ${imageRef}: ${(err as Error).message}`, { cause: err });
  } finally {
    if (!options.engine) await engine.close();
    rmSync(scratch, { recursive: true, force: true });
  }
}
