/**
 * Snapshots end to end through `serve()`: real buildah builds `FROM` the offline busybox base image that
 * `serve()` pushed to its local registry, pushes the result, and the service registers it after asking the real
 * registry for the manifest (`HEAD /v2/…/manifests/…`). Nothing is skipped: without buildah, `beforeAll` fails
 * with an install hint.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { lastValueFrom, toArray } from 'rxjs';
import { createClient, HttpError, ImageNotFoundError, type RxbuildClient } from '../src/client';
import { serve, type RunningService } from '../src/server/serve';
import { TestHooks } from './helpers/test-server';
import { checkBuildah } from '../src/server/engines/buildah';
import { BASE_IMAGE_REPOSITORY, BASE_IMAGE_TAG } from '../src/server/base-image';
import { registryManifestDigest, splitImageRef } from '../src/server/registry';

const TOKEN = `snap-real-${randomBytes(6).toString('hex')}`;
let tmp: string;
let clientTmp: string;
let service: RunningService;
/** What the service received. */
const hooks = new TestHooks();
let client: RxbuildClient;
let base: string;

beforeAll(async () => {
  await checkBuildah();
  tmp = mkdtempSync(join(tmpdir(), 'rxbuild-snap-real-'));
  clientTmp = mkdtempSync(join(tmp, 'client-'));
  service = await serve({ dataDir: join(tmp, 'data'), token: TOKEN, port: 0, maxConcurrent: 1, hooks });
  client = createClient({ baseUrl: service.url, token: TOKEN, handleSigint: false, tmpDir: clientTmp });
  base = `${service.registry}/${BASE_IMAGE_REPOSITORY}:${BASE_IMAGE_TAG}`;
}, 180_000);

afterAll(async () => {
  await client?.close();
  await service?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('image snapshot with real buildah and registry', () => {
  it('builds FROM the base image in the local registry, pushes it, and registers its image_ref and registry digest', async () => {
    const events = await lastValueFrom(client.snapshots.create({ image: base, alias: 'busybox-e2e', tags: { e2e: 'yes' }, nydus: false }).pipe(toArray()));
    const result = events[events.length - 1];
    if (result.type !== 'result') throw new Error(`last event: ${JSON.stringify(result)}`);

    // buildah ran our one-line Dockerfile.
    const steps = events.flatMap((e) => (e.type === 'build' && e.event.type === 'step' ? [e.event.text] : []));
    expect(steps.some((t) => t.includes(`FROM ${base}`))).toBe(true);
    const prepare = events.find((e) => e.type === 'stage' && e.stage === 'prepare');
    if (!prepare || prepare.type !== 'stage' || prepare.stage !== 'prepare') throw new Error('no prepare stage');
    expect(existsSync(prepare.tempDir!)).toBe(false);
    expect(readdirSync(clientTmp)).toEqual([]);

    // The image is really in the registry, under the token's namespace, with the registered digest.
    expect(result.imageRef).toMatch(new RegExp(`^${esc(service.registry)}/ns-[0-9a-f]{12}/busybox:snapshot-`));
    const { registry, repository, tag } = splitImageRef(result.imageRef);
    expect(await registryManifestDigest(registry, repository, tag)).toBe(result.digest);

    // What the service stored and serves.
    const byId = await client.snapshots.get(result.snapshotId);
    expect(byId).toMatchObject({ imageRef: result.imageRef, digest: result.digest, aliases: ['busybox-e2e'], status: 'active', tags: { e2e: 'yes' } });
    const res = await fetch(`${service.url}/snapshots/%40busybox-e2e`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(await res.json()).toMatchObject({ snapshot_id: result.snapshotId, image_ref: result.imageRef, digest: result.digest });
    const requests = hooks.requests;
    expect(requests.filter((r) => r.method === 'POST').map((r) => `${r.path} ${r.status}`)).toEqual([
      // The context goes by content (docs/api.md, "Contexts by content"): what is missing, the contents, the build.
      '/contents/missing 200',
      '/contents 200',
      '/builds 201',
      '/snapshots 201',
      `/snapshots/${result.snapshotId}/aliases 200`,
    ]);
    expect(requests.filter((r) => r.method === 'DELETE')).toHaveLength(0);
  }, 180_000);

  it('registers an existing registry image by asking the registry, and refuses what it does not have', async () => {
    const direct = await client.snapshots.register({ image: base });
    expect(direct.digest).toBe(await registryManifestDigest(service.registry, BASE_IMAGE_REPOSITORY, BASE_IMAGE_TAG));
    expect(direct.imageRef).toBe(base);

    const missing = await client.snapshots.register({ image: `${service.registry}/${BASE_IMAGE_REPOSITORY}:no-such-tag` }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(ImageNotFoundError);
    expect((missing as ImageNotFoundError).status).toBe(422);

    const elsewhere = await client.snapshots.register({ image: 'docker.io/library/busybox:latest' }).catch((e: unknown) => e);
    expect(elsewhere).toBeInstanceOf(HttpError);
    expect(elsewhere).toMatchObject({ status: 422, serverCode: 'registry_not_supported' });
  });
});
