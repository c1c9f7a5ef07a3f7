/**
 * Public shapes of `client.snapshots`: parameters, the events of `create()`, and snapshots as the client
 * returns them (a camelCase view of `SnapshotWire`).
 *
 * @packageDocumentation
 */
import type { Observable } from 'rxjs';
import type { SnapshotArchitecture, SnapshotStatus } from '../shared/snapshot-wire';
import type { BuildEvent } from './types';

export type { SnapshotArchitecture, SnapshotStatus } from '../shared/snapshot-wire';

/** A registered snapshot. */
export interface SnapshotInfo {
  snapshotId: string;
  /** The registered image without digest (`registry/ns/name:tag`). */
  imageRef: string;
  /** Manifest digest the image resolved to when it was registered. */
  digest: string;
  architecture: SnapshotArchitecture;
  tags: Record<string, string>;
  /** Aliases this snapshot holds now. */
  aliases: string[];
  /** `active`, `expired` (TTL ran out) or `retired`. */
  status: SnapshotStatus;
  /** Seconds, or `null` for no expiry. */
  ttl: number | null;
  createdAt: string;
  expiresAt: string | null;
  retiredAt: string | null;
}

/** Options shared by both kinds of {@link CreateSnapshotParams}. */
export interface SnapshotCommonParams {
  /** `amd64` (default) or `arm64`: the architecture the snapshot is registered for. */
  architecture?: SnapshotArchitecture;
  /** Give the new snapshot this alias (taking it from its previous holder). */
  alias?: string;
  /** Time to live in seconds (positive integer). */
  ttl?: number;
  /** Free-form labels. */
  tags?: Record<string, string>;
  /**
   * Name of the intermediate image (`name` or `name:tag`). Default: a slug of the image's last path component
   * (or of the context directory's name) and a unique `snapshot-…` tag.
   */
  imageName?: string;
  /** Build args passed to the build (the base image may use `ARG`s). */
  buildArgs?: Record<string, string>;
  /** Ask the builder for a nydus conversion (default `true`, as for builds). */
  nydus?: boolean;
  /** Aborting cancels the snapshot exactly like unsubscribing. */
  signal?: AbortSignal;
  /** Fail (and cancel the remote build) when the build step takes longer than this. */
  timeoutMs?: number;
}

/** Snapshot a public/registry image: the client builds `FROM <image>` remotely and registers the result. */
export interface ImageSnapshotParams extends SnapshotCommonParams {
  image: string;
  context?: undefined;
  dockerfile?: undefined;
}

/** Snapshot a build context: the client builds it remotely and registers the result. */
export interface ContextSnapshotParams extends SnapshotCommonParams {
  context: string;
  /** Dockerfile path relative to the context (default `Dockerfile`); one outside the context is refused. */
  dockerfile?: string;
  image?: undefined;
}

/** What `client.snapshots.create` takes: exactly one of `image` or `context`. */
export type CreateSnapshotParams = ImageSnapshotParams | ContextSnapshotParams;

/**
 * The stages of `create()`, in order (`alias` only when an alias was asked for). Called stages so that
 * `type: 'step'` means only a build's step n/m (`BuildStepEvent`).
 */
export type SnapshotStage = 'prepare' | 'build' | 'register' | 'alias';

/** A stage starts. */
export type SnapshotStageEvent =
  | {
      type: 'stage';
      stage: 'prepare';
      /** The temp dir holding the generated Dockerfile (image snapshots); `null` for context snapshots. */
      tempDir: string | null;
      /** The directory that will be built. */
      contextDir: string;
      /** Dockerfile path relative to `contextDir`. */
      dockerfile: string;
    }
  | { type: 'stage'; stage: 'build'; imageName: string }
  | { type: 'stage'; stage: 'register'; buildId: string; imageRef: string; digest: string }
  | { type: 'stage'; stage: 'alias'; snapshotId: string; alias: string };

/** @deprecated Old name of {@link SnapshotStage}. */
export type SnapshotStep = SnapshotStage;
/** @deprecated Old name of {@link SnapshotStageEvent} (the events themselves now say `type: 'stage'`). */
export type SnapshotStepEvent = SnapshotStageEvent;

/** Every event of the build step, passed through unchanged. */
export interface SnapshotBuildEvent {
  type: 'build';
  event: BuildEvent;
}

/** The outcome of `create()`. */
export interface SnapshotResult {
  snapshotId: string;
  /** The alias given, or `null`. */
  alias: string | null;
  imageRef: string;
  digest: string;
  /** The build that produced the image. */
  buildId: string;
  /** The snapshot as the service registered it. */
  snapshot: SnapshotInfo;
}

/** The last event of a successful `create()`. */
export interface SnapshotResultEvent extends SnapshotResult {
  type: 'result';
}

/** Everything `create()` emits. */
export type SnapshotEvent = SnapshotStageEvent | SnapshotBuildEvent | SnapshotResultEvent;

/** Register an image that already exists in a registry (no build). */
export interface RegisterSnapshotParams {
  /** `registry/path:tag`, optionally pinned with `@sha256:…`. */
  image: string;
  architecture?: SnapshotArchitecture;
  alias?: string;
  ttl?: number;
  tags?: Record<string, string>;
  signal?: AbortSignal;
}

/** Options of `list()`, `list$()` and `listPage()`. */
export interface ListSnapshotsOptions {
  /** Page size asked of the service (1–200; default the service's, 50). */
  limit?: number;
  /** Start after this cursor (from a previous page). */
  cursor?: string;
  signal?: AbortSignal;
}

/** One page of snapshots, newest first. */
export interface SnapshotPage {
  items: SnapshotInfo[];
  /** Pass to the next `listPage` call; `null` on the last page. */
  nextCursor: string | null;
}

/** `client.snapshots`. */
export interface SnapshotsApi {
  /**
   * Build an image (from `image` or `context`) and register it as a snapshot. Cold: nothing happens before
   * subscribe. Unsubscribing, `signal` or Ctrl+C at any step cancels the remote build (one `DELETE`) and removes
   * the temp dir.
   */
  create(params: CreateSnapshotParams): Observable<SnapshotEvent>;
  /** Promise form of {@link SnapshotsApi.create}: resolves with the result, rejects with a typed error. */
  createAndWait(params: CreateSnapshotParams): Promise<SnapshotResult>;
  /** Register an image that already exists (`POST /snapshots`, then the alias if given). */
  register(params: RegisterSnapshotParams): Promise<SnapshotInfo>;
  /** `GET /snapshots/{id}`. */
  get(snapshotId: string, options?: { signal?: AbortSignal }): Promise<SnapshotInfo>;
  /** `GET /snapshots/@{alias}`: the alias's current holder. */
  getByAlias(alias: string, options?: { signal?: AbortSignal }): Promise<SnapshotInfo>;
  /** Every snapshot, newest first, fetched page by page as you iterate. */
  list(options?: ListSnapshotsOptions): AsyncIterable<SnapshotInfo>;
  /** {@link SnapshotsApi.list} as a cold Observable; unsubscribing aborts the page request in flight. */
  list$(options?: Omit<ListSnapshotsOptions, 'signal'>): Observable<SnapshotInfo>;
  /** One page (`GET /snapshots?cursor=&limit=`). */
  listPage(options?: ListSnapshotsOptions): Promise<SnapshotPage>;
  /** Give `alias` to the snapshot (moving it from its previous holder). 409 for a retired/expired snapshot. */
  alias(snapshotId: string, alias: string, options?: { signal?: AbortSignal }): Promise<SnapshotInfo>;
  /** Retire the snapshot (`POST /snapshots/{id}/retire`, idempotent); it stays readable, marked retired. */
  retire(snapshotId: string, options?: { signal?: AbortSignal }): Promise<SnapshotInfo>;
}
