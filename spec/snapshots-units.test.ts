/**
 * Units of the snapshot code that need no server: the image reference grammar, slugs, the other input
 * grammars, and the registration retry predicate.
 */
import { HttpError, TransportError } from '../src/client';
import { imageSlug, isSafeRegistrationRetry, slugify } from '../src/client/internal/snapshots';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { SnapshotStore } from '../src/server/snapshots-store';
import { aliasProblem, parseImageReference, referenceWithoutDigest, tagsProblem, ttlProblem } from '../src/shared/snapshot-wire';

const HEX = 'a'.repeat(64);

describe('parseImageReference', () => {
  it.each([
    ['busybox', { domain: null, path: 'busybox', tag: null, digest: null }],
    ['library/busybox:1.36', { domain: null, path: 'library/busybox', tag: '1.36' }],
    ['docker.io/library/busybox:latest', { domain: 'docker.io', path: 'library/busybox', tag: 'latest' }],
    ['127.0.0.1:5000/ns-1/app:v1', { domain: '127.0.0.1:5000', path: 'ns-1/app', tag: 'v1' }],
    ['localhost/app', { domain: 'localhost', path: 'app' }],
    ['Registry.Example.com/a/b', { domain: 'Registry.Example.com', path: 'a/b' }],
    ['[::1]:5000/a', { domain: '[::1]:5000', path: 'a' }],
    [`a/b:t@sha256:${HEX}`, { path: 'a/b', tag: 't', digest: `sha256:${HEX}` }],
    ['my__img/x-y.z', { path: 'my__img/x-y.z' }],
  ])('accepts %s', (ref, expected) => {
    expect(parseImageReference(ref)).toMatchObject(expected);
  });

  it.each([
    'busybox\nRUN id',
    'busybox\n',
    'busybox RUN id',
    'busybox AS x',
    '--platform=x busybox',
    'BusyBox',
    'Upper/app',
    'a//b',
    'a/b:',
    'a/-b',
    'a/b:-tag',
    'a@sha256:abc',
    `a@sha256:${'A'.repeat(64)}`,
    'a/b\u00a0',
    'a;b',
    '',
    'x'.repeat(300),
  ])('refuses %j', (ref) => {
    expect(typeof parseImageReference(ref)).toBe('string');
  });

  it('keeps the tag and drops the digest for the stored reference', () => {
    const p = (r: string) => {
      const x = parseImageReference(r);
      if (typeof x === 'string') throw new Error(x);
      return referenceWithoutDigest(x);
    };
    expect(p('h.io/a:1')).toBe('h.io/a:1');
    expect(p('h.io/a')).toBe('h.io/a:latest');
    expect(p(`h.io/a:1@sha256:${HEX}`)).toBe('h.io/a:1');
    expect(p(`h.io/a@sha256:${HEX}`)).toBe(`h.io/a@sha256:${HEX}`);
  });
});

describe('slugs', () => {
  it.each([
    ['docker.io/library/busybox:1.36', 'busybox'],
    ['127.0.0.1:5000/ns/My_Tool', 'image'], // upper case: not a reference at all
    ['127.0.0.1:5000/ns/my_tool:v', 'my-tool'],
    [`ghcr.io/x/app@sha256:${HEX}`, 'app'],
    ['a/9', '9'],
  ])('imageSlug(%s) = %s', (ref, slug) => {
    expect(imageSlug(ref)).toBe(slug);
  });

  it('slugify lower-cases, maps _ and other characters to -, and falls back to "image"', () => {
    expect(slugify('My_Project')).toBe('my-project');
    expect(slugify('web app (v2)')).toBe('web-app-v2');
    expect(slugify('...')).toBe('image');
    expect(slugify('')).toBe('image');
  });
});

describe('other grammars', () => {
  it('aliases, ttl, tags', () => {
    expect(aliasProblem('prod-1.2_x')).toBeNull();
    expect(aliasProblem('.x')).not.toBeNull();
    expect(aliasProblem('a/b')).not.toBeNull();
    expect(ttlProblem(60)).toBeNull();
    for (const bad of [0, -1, 1.5, '60', NaN, 1e12]) expect(ttlProblem(bad)).not.toBeNull();
    expect(tagsProblem({ 'team/name': 'x' })).toBeNull();
    expect(tagsProblem({ ' ': 'x' })).not.toBeNull();
    expect(tagsProblem(Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v'])))).not.toBeNull();
  });
});

describe('isSafeRegistrationRetry', () => {
  it('retries only failures before any response, and 408/429/503 that carry Retry-After', () => {
    expect(isSafeRegistrationRetry(new TransportError('ECONNREFUSED', 'refused'), false)).toBe(true);
    expect(isSafeRegistrationRetry(new TransportError('ECONNRESET', 'reset'), false)).toBe(true);
    expect(isSafeRegistrationRetry(new TransportError('ECONNRESET', 'reset'), true)).toBe(false);
    expect(isSafeRegistrationRetry(new TransportError('UND_ERR_HEADERS_TIMEOUT', 'slow'), false)).toBe(false);
    for (const status of [408, 429, 503]) {
      expect(isSafeRegistrationRetry(new HttpError(status, 'x', { retryAfterMs: 0 }), true)).toBe(true);
      expect(isSafeRegistrationRetry(new HttpError(status, 'x'), true)).toBe(false);
    }
    for (const status of [500, 502, 504, 409, 422]) {
      expect(isSafeRegistrationRetry(new HttpError(status, 'x', { retryAfterMs: 0 }), true)).toBe(false);
    }
    expect(isSafeRegistrationRetry(new Error('programmer error'), false)).toBe(false);
  });
});

describe('SnapshotStore', () => {
  it('a snapshot past its TTL reads as expired, and an expired or retired one cannot be aliased', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'rxbuild-snapstore-'));
    const store = await SnapshotStore.open(dir);
    try {
      const { snapshot } = await store.create({ imageRef: 'h.io/a:1', digest: `sha256:${HEX}`, architecture: 'amd64', tags: {}, ttl: 60, idempotencyKey: null });
      const created = Date.parse(snapshot.created_at);
      expect(store.statusOf(snapshot, created + 59_999)).toBe('active');
      expect(store.statusOf(snapshot, created + 60_000)).toBe('expired');
      expect(store.toWire(snapshot).expires_at).toBe(new Date(created + 60_000).toISOString());
      // Expire it for real by rewriting its creation time (the store reads the clock when aliasing).
      snapshot.created_at = new Date(Date.now() - 61_000).toISOString();
      expect(await store.alias(snapshot.snapshot_id, 'late')).toBe('expired');
      const { snapshot: other } = await store.create({ imageRef: 'h.io/a:1', digest: `sha256:${HEX}`, architecture: 'arm64', tags: {}, ttl: null, idempotencyKey: null });
      await store.retire(other.snapshot_id);
      expect(await store.alias(other.snapshot_id, 'x')).toBe('retired');
      expect(await store.alias('s_000000000000000000000000', 'x')).toBe('not_found');
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
