/**
 * Worker: pack and upload one large context to a scripted server (no log lines) and time the phases.
 *
 * - `client`: `client.builds.build`, as users call it (default gzip level), phases from its status events:
 *   packing → uploading → queued (the POST was answered: the server has the whole context unpacked).
 * - `modules`: the same two steps `builds.build` runs (`packContext`, and `startSubmit` following its temp file
 *   from the first MiB on), called directly so
 *   that a different gzip level can be tried (the client does not expose the level).
 *
 * Peak RSS is sampled per phase (VmRSS every 20 ms); the process VmHWM comes with the worker stats.
 *
 * @packageDocumentation
 */
import { randomUUID } from 'node:crypto';
import { lastValueFrom, tap } from 'rxjs';
import { Agent } from 'undici';
import { createClient } from '../../src/client';
import { createHttpContext } from '../../src/client/internal/http';
import type { GrowingFile } from '../../src/client/internal/growing-file';
import { packContext } from '../../src/client/internal/pack';
import { startSubmit } from '../../src/client/internal/submit';
import { nowMs, procStatusBytes } from '../lib/proc';
import { workerMain } from '../lib/worker';

/** Input of the worker. */
export interface UploadInput {
  baseUrl: string;
  token: string;
  contextDir: string;
  tmpDir: string;
  mode: 'client' | 'modules';
  /** `modules` only. */
  gzipLevel?: number;
}

/** Result of the worker. */
export interface UploadResult {
  packMs: number;
  uploadMs: number;
  totalMs: number;
  packedBytes: number;
  buildId: string;
  /** Peak RSS sampled during each phase, bytes. */
  rssByPhase: { packing: number; uploading: number };
}

const BUILD_ARGS = { SCRIPT_LINES: '0' };

/** Tracks the phase and samples RSS per phase. */
class PhaseClock {
  readonly at: Record<'start' | 'uploading' | 'done', number> = { start: nowMs(), uploading: NaN, done: NaN };
  readonly rss = { packing: 0, uploading: 0 };
  private phase: 'packing' | 'uploading' | 'done' = 'packing';
  private readonly timer = setInterval(() => this.sample(), 20);

  private sample(): void {
    if (this.phase !== 'done') this.rss[this.phase] = Math.max(this.rss[this.phase], procStatusBytes('self', 'VmRSS'));
  }

  enter(phase: 'uploading' | 'done'): void {
    if (!Number.isNaN(this.at[phase])) return;
    this.sample();
    this.phase = phase;
    this.at[phase] = nowMs();
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

async function viaClient(input: UploadInput, clock: PhaseClock): Promise<{ packedBytes: number; buildId: string }> {
  const client = createClient({ baseUrl: input.baseUrl, token: input.token, tmpDir: input.tmpDir });
  const out = { packedBytes: 0, buildId: '' };
  try {
    const build$ = client.builds.build({ context: input.contextDir, imageName: 'bench-upload', buildArgs: BUILD_ARGS, nydus: false });
    await lastValueFrom(
      build$.pipe(
        tap((e) => {
          if (e.type === 'status' && e.phase === 'uploading') {
            clock.enter('uploading');
            out.packedBytes = e.bytesTotal ?? 0;
          } else if (e.type === 'status' && e.phase === 'queued') {
            clock.enter('done');
            out.buildId = e.buildId ?? '';
          }
        }),
      ),
    );
  } finally {
    await client.close();
  }
  return out;
}

async function viaModules(input: UploadInput, clock: PhaseClock): Promise<{ packedBytes: number; buildId: string }> {
  const agent = new Agent();
  // As `builds.build` does (issue 14): the upload starts once 1 MiB is packed and follows the temp file as it grows.
  let created!: (f: GrowingFile) => void;
  const fileCreated = new Promise<GrowingFile>((resolve) => (created = resolve));
  const packing = packContext({ contextDir: input.contextDir, dockerfile: 'Dockerfile', tmpDir: input.tmpDir, gzipLevel: input.gzipLevel, onFile: created });
  const growing = await fileCreated;
  await growing.reached(1024 * 1024);
  const packed = growing.finished ? await packing : undefined;
  try {
    clock.enter('uploading');
    const submission = startSubmit({
      http: createHttpContext(input.baseUrl, input.token, agent),
      file: packed ?? growing,
      build: { imageName: 'bench-upload', dockerfile: 'Dockerfile', buildArgs: BUILD_ARGS, nydus: false, cacheKey: undefined },
      idempotencyKey: randomUUID(),
      retry: { count: 0, baseDelayMs: 0, maxDelayMs: 0 },
    });
    const buildId = await submission.result;
    clock.enter('done');
    return { packedBytes: growing.written, buildId };
  } finally {
    await (await packing).cleanup();
    await agent.close();
  }
}

workerMain<UploadInput, UploadResult>(async (input) => {
  const clock = new PhaseClock();
  try {
    const { packedBytes, buildId } = await (input.mode === 'client' ? viaClient : viaModules)(input, clock);
    const { start, uploading, done } = clock.at;
    return { packMs: uploading - start, uploadMs: done - uploading, totalMs: done - start, packedBytes, buildId, rssByPhase: clock.rss };
  } finally {
    clock.stop();
  }
});
