/**
 * The sandbox's pure parts: which STEP lines count as buildah's step markers (a RUN step printing one must not
 * move progress), the isolation arguments handed to `buildah bud`, the limit messages, and the CLI parsers of
 * sizes and durations.
 */
import { StepMarkers, dockerfileStages } from '../src/server/engines/buildah-steps';
import { formatBytes, formatDuration, isolationArgs } from '../src/server/engines/buildah-sandbox';
import { runtimeShimText } from '../src/server/engines/oci-runtime-shim';
import { parseByteSize, parseDuration } from '../src/cli/parse';

const DOCKERFILE = [
  '# escape=\\',
  'ARG BASE=busybox',
  'FROM $BASE AS build',
  '# a comment',
  'COPY a \\',
  '     /a',
  'RUN echo   "STEP 3/3: RUN done"',
  '',
  'FROM scratch',
  'COPY --from=build /a /a',
].join('\n');

describe('StepMarkers', () => {
  it('splits a Dockerfile into stages of normalised instructions', () => {
    expect(dockerfileStages(DOCKERFILE)).toEqual([
      ['FROM $BASE AS build', 'COPY a /a', 'RUN echo "STEP 3/3: RUN done"'],
      ['FROM scratch', 'COPY --from=build /a /a'],
    ]);
  });

  it('accepts buildah\'s markers in order and ignores lookalikes printed by a RUN step', () => {
    const markers = new StepMarkers(DOCKERFILE);
    const accepted = [
      '[1/2] STEP 1/3: FROM $BASE AS build',
      'STEP 7/7: RUN fake', // a RUN's output, before the real steps
      '[1/2] STEP 2/3: COPY a      /a',
      '[1/2] STEP 2/3: COPY a      /a', // a repeat
      '[1/2] STEP 3/3: RUN echo   "STEP 3/3: RUN done"',
      'STEP 3/3: RUN done', // what that RUN prints
      '[1/2] STEP 3/3: RUN something else',
      '[2/2] STEP 2/2: COPY --from=build /a /a', // out of order
      '[2/2] STEP 1/2: FROM scratch',
      '[2/2] STEP 2/2: COPY --from=build /a /a',
    ].map((line) => markers.accept(line));
    expect(accepted.map((s) => (s ? `${s.index}/${s.total} ${s.text}` : null))).toEqual([
      '1/3 [1/2] FROM $BASE AS build',
      null,
      '2/3 [1/2] COPY a      /a',
      null,
      '3/3 [1/2] RUN echo   "STEP 3/3: RUN done"',
      null,
      null,
      null,
      '1/2 [2/2] FROM scratch',
      '2/2 [2/2] COPY --from=build /a /a',
    ]);
  });
});

describe('isolation arguments', () => {
  it('always map root to the unprivileged range and give RUN steps their own namespaces and cgroup', () => {
    for (const mode of ['outbound', 'none'] as const) {
      const args = isolationArgs(mode, { hostId: 100000, size: 65536 }, '/rxbuild/s/b/run', '/shim').join(' ');
      expect(args).toContain('--isolation oci');
      expect(args).toContain('--userns-uid-map 0:100000:65536 --userns-gid-map 0:100000:65536');
      expect(args).toContain('--pid private');
      expect(args).toContain('--cgroup-parent /rxbuild/s/b/run');
    }
    // buildah is told "host" only together with the shim that swaps in the build's namespaces.
    expect(isolationArgs('none', { hostId: 1, size: 2 }, '/c', '/shim').join(' ')).toContain('--runtime /shim --network host --dns none');
    expect(isolationArgs('outbound', { hostId: 1, size: 2 }, '/c', '/shim').join(' ')).toContain('--runtime /shim --network host --dns 10.0.2.3');
  });

  it('has a runtime shim that fails closed without the build\'s namespaces', () => {
    const text = runtimeShimText('/usr/bin/node', 'runc');
    expect(text).toContain('RXBUILD_SANDBOX_NS is not set');
    expect(text).toContain("exec 'runc' \"$@\"");
  });
});

describe('limits', () => {
  it('names sizes and durations the way the messages say them', () => {
    expect(formatBytes(256 * 1024 ** 2)).toBe('256 MiB');
    expect(formatBytes(4 * 1024 ** 3)).toBe('4 GiB');
    expect(formatDuration(3_600_000)).toBe('1 h');
    expect(formatDuration(15_000)).toBe('15 s');
  });

  it('parses --build-memory and --build-timeout values, refusing nonsense with the flag\'s name', () => {
    expect(parseByteSize('--build-memory')('4g')).toBe(4 * 1024 ** 3);
    expect(parseByteSize('--build-memory')('256m')).toBe(256 * 1024 ** 2);
    expect(() => parseByteSize('--build-memory')('lots')).toThrow('--build-memory must be a size');
    expect(parseDuration('--build-timeout')('1h')).toBe(3_600_000);
    expect(parseDuration('--build-timeout')('90')).toBe(90_000);
    expect(() => parseDuration('--build-timeout')('soon')).toThrow('--build-timeout must be a duration');
  });
});
