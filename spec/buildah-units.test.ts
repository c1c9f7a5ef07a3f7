/**
 * The buildah engine's pure parts: STEP parsing, the registries.conf it writes, the nydus honesty rule, the
 * static-busybox check and image reference splitting.
 */
import { parseStepLine, LastLines } from '../src/server/engines/buildah-lines';
import { registriesConfText, assertRegistryAddress } from '../src/server/engines/buildah-config';
import { appliedChunkedCompression } from '../src/server/engines/buildah';
import { isStaticElf, findStaticBusybox } from '../src/server/base-image';
import { splitImageRef } from '../src/server/registry';

describe('parseStepLine', () => {
  it('reads single-stage steps', () => {
    expect(parseStepLine('STEP 1/3: FROM scratch')).toEqual({ index: 1, total: 3, text: 'FROM scratch' });
    expect(parseStepLine('STEP 3/3: RUN ["/bin/busybox","sh","-c","echo hi"]')).toEqual({
      index: 3,
      total: 3,
      text: 'RUN ["/bin/busybox","sh","-c","echo hi"]',
    });
  });
  it('keeps the stage marker of multi-stage builds in the text', () => {
    expect(parseStepLine('[2/2] STEP 1/3: FROM scratch')).toEqual({ index: 1, total: 3, text: '[2/2] FROM scratch' });
  });
  it('ignores everything else', () => {
    for (const line of ['hello', 'STEP 4/3: RUN x', 'STEP 0/3: RUN x', ' STEP 1/2: FROM a', 'COMMIT x', 'step 1/2: FROM a']) {
      expect(parseStepLine(line)).toBeNull();
    }
  });
});

describe('LastLines', () => {
  it('keeps only the most recent lines', () => {
    const last = new LastLines(2);
    ['a', 'b', 'c'].forEach((l) => last.push(l));
    expect(last.get()).toEqual(['b', 'c']);
  });
});

describe('registries.conf', () => {
  it('marks the registry insecure and mirrors Docker Hub to it', () => {
    const text = registriesConfText('127.0.0.1:5123');
    expect(text).toContain('[[registry]]\nlocation = "127.0.0.1:5123"\ninsecure = true');
    expect(text).toContain('prefix = "docker.io"\nlocation = "docker.io"\n[[registry.mirror]]\nlocation = "127.0.0.1:5123"\ninsecure = true');
    expect(text).toContain('"busybox" = "docker.io/library/busybox"');
  });
  it('refuses addresses that are not plain host:port (they are written into TOML)', () => {
    for (const bad of ['', 'http://x:1', 'x:1/path', 'x:1"\n[aliases]', 'a b:1']) {
      expect(() => assertRegistryAddress(bad)).toThrow(/expected host:port/);
    }
    expect(() => assertRegistryAddress('registry.local:5000')).not.toThrow();
    expect(() => assertRegistryAddress('[::1]:5000')).not.toThrow();
  });
});

describe('appliedChunkedCompression (never claims what did not happen)', () => {
  const chunked = { mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd', annotations: { 'io.containers.zstd-chunked.manifest-checksum': 'sha256:x' } };
  const gzip = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' };
  const plainZstd = { mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd' };
  it('reports zstd:chunked only for layers that carry the chunked table of contents', () => {
    expect(appliedChunkedCompression([chunked, chunked])).toBe('zstd:chunked');
    expect(appliedChunkedCompression([gzip, chunked])).toBe('zstd:chunked (1 of 2 layers)');
    expect(appliedChunkedCompression([gzip])).toBeNull();
    expect(appliedChunkedCompression([plainZstd])).toBeNull();
    expect(appliedChunkedCompression([])).toBeNull();
  });
});

describe('static busybox', () => {
  it('finds the statically linked busybox and tells dynamic executables apart', () => {
    expect(isStaticElf(findStaticBusybox())).toBe(true);
    expect(isStaticElf(process.execPath)).toBe(false); // node is dynamically linked
    expect(isStaticElf(__filename)).toBe(false); // not ELF at all
  });
  it('names the package to install when there is none', () => {
    expect(() => findStaticBusybox(__filename)).toThrow(/apt-get install -y busybox-static/);
  });
});

describe('splitImageRef', () => {
  it('splits registry, repository and tag', () => {
    expect(splitImageRef('127.0.0.1:5000/ns/app:v1')).toEqual({ registry: '127.0.0.1:5000', repository: 'ns/app', tag: 'v1' });
    expect(splitImageRef('127.0.0.1:5000/ns/app')).toEqual({ registry: '127.0.0.1:5000', repository: 'ns/app', tag: 'latest' });
    expect(splitImageRef('r:1/a/b@sha256:abc')).toEqual({ registry: 'r:1', repository: 'a/b', tag: 'sha256:abc' });
    expect(() => splitImageRef('app:v1')).toThrow(/no registry part/);
  });
});
