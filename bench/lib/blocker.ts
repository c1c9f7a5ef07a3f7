/**
 * Starting a build's log stream before the build itself: with `maxConcurrent: 1`, a build that hangs holds the
 * only slot, the build under test waits `queued` while its consumer connects, and releasing the blocker starts
 * it. Both consumers of a comparison then read the same live stream from its first line.
 *
 * @packageDocumentation
 */
import type { TestServer } from '../../spec/helpers/test-server';
import { createBuild, deleteBuild, requestsFor, scriptArgs } from './server';

/** A build that holds the server's only slot until released. */
export class Blocker {
  private constructor(
    private readonly server: TestServer,
    readonly buildId: string,
  ) {}

  /** Create the blocker and wait until it runs. */
  static async start(server: TestServer, contextDir: string): Promise<Blocker> {
    const id = await createBuild(server, contextDir, scriptArgs({ SCRIPT_LINES: 0, SCRIPT_OUTCOME: 'hang' }));
    await server.waitForBuild(id, (s) => s === 'running');
    return new Blocker(server, id);
  }

  /** Wait until build `buildId` has a log stream open, then cancel the blocker so that build starts. */
  async releaseWhenStreaming(buildId: string): Promise<void> {
    await this.server.waitForRequest((r) => requestsFor(this.server, buildId, 'GET', true).includes(r));
    await deleteBuild(this.server, this.buildId);
  }
}
