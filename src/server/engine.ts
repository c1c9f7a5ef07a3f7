/**
 * The contract between the builder service and whatever actually builds images.
 *
 * The service owns queuing, state, logs and HTTP; an engine only turns an unpacked context into a pushed
 * image and reports what it prints as it goes. Two engines exist: the scripted engine (deterministic, for tests
 * and benchmarks) and the buildah engine (real builds pushed to a real registry).
 *
 * @packageDocumentation
 */
import type { BuildStepWire } from '../shared/wire';
import type { TrackedProcessGroup } from './process-group';

/** One build for an engine to run. Everything is already validated and unpacked by the service. */
export interface EngineJob {
  buildId: string;
  /** Absolute path of the unpacked, validated build context (inside the service's data dir). */
  contextDir: string;
  /** Dockerfile path relative to `contextDir` (already checked not to escape it). */
  dockerfile: string;
  /** `name:tag` as submitted (tag defaulted to `latest`). */
  imageName: string;
  /** Where to push: `registry/namespace/name:tag`. */
  imageRef: string;
  buildArgs: Record<string, string>;
  /** The client asked for `nydus_convert`. */
  nydus: boolean;
  cacheKey: string | null;
  /**
   * The layer cache this build may use and fill: builds with the same scope share cached layers, builds with
   * different scopes never see each other's. The service sets it to the namespace (plus the `cache_key`);
   * absent or `null`: no layer cache.
   */
  cacheScope?: string | null;
  /** Use no cached layer (they are still stored for later builds). */
  noCache?: boolean;
  /** Pull base images again even when they are in storage. */
  pull?: boolean;
  /** The stage of a multi-stage Dockerfile to build. */
  target?: string | null;
  /** Labels to set on the image. */
  labels?: Record<string, string>;
  /** A scratch directory for this build only (removed by the service afterwards). */
  workDir: string;
  /** Build secrets by id, for `RUN --mount=type=secret,id=…`; never to be written to the data dir. */
  secrets?: Record<string, string>;
}

/** Where an engine reports as it runs. Calls are cheap and synchronous; the service persists and fans out. */
export interface EngineSink {
  /** One line of output, without its trailing newline. */
  log(line: string): void;
  /** Structured progress, e.g. buildah's `STEP n/m: …`. */
  step(step: BuildStepWire): void;
  /**
   * Record a process group the engine started, in the build's durable state, so that a service restarted after
   * a crash can kill what was left running. Returns a function to call once the group is gone. `spawnInGroup`
   * (`./process-group`) calls this for you when given the sink as `tracker`. Optional so that test sinks need
   * not implement it; the service's sink always does.
   */
  trackProcessGroup?(group: TrackedProcessGroup): () => void;
}

/** A successful engine run. */
export interface EngineResult {
  /** The pushed image reference (normally `job.imageRef`). */
  imageRef: string;
  /** The pushed manifest digest, `sha256:…`. */
  digest: string;
  /** What was done for a `nydus_convert` request, or `null` when nothing was applied. */
  nydusApplied: string | null;
}

/**
 * Builds images. `run` resolves with the pushed image, rejects with an `Error` whose message is the build's
 * failure, and must stop everything it started (whole process tree) within a second of `signal` aborting,
 * then reject.
 */
export interface Engine {
  /** Short name for logs and status (`scripted`, `buildah`). */
  readonly name: string;
  run(job: EngineJob, sink: EngineSink, signal: AbortSignal): Promise<EngineResult>;
  /** Release anything the engine holds (child processes, registry). Called once when the service stops. */
  close?(): Promise<void>;
}
