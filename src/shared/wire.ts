/**
 * The wire protocol between rxbuild clients and a remote image builder.
 *
 * This is the one place where the shapes that cross HTTP are written down. The client (`src/client`) and the
 * local service (`src/server`) both import from here and never from each other. `docs/api.md` is the prose
 * version of this file; keep them in step.
 *
 * Field names on the wire are snake_case, as in the reference builder.
 *
 * @packageDocumentation
 */

/** Every state a build can be in, in the order a build goes through them. The last three are terminal. */
export const BUILD_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;

/** Every state a build can be in. `succeeded`, `failed` and `cancelled` are terminal. */
export type BuildStatus = (typeof BUILD_STATUSES)[number];

/** The terminal build states: once a build is in one of these it never changes again. */
export const TERMINAL_BUILD_STATUSES: readonly BuildStatus[] = ['succeeded', 'failed', 'cancelled'];

/** True when `status` is terminal (`succeeded`, `failed` or `cancelled`). */
export function isTerminalBuildStatus(status: BuildStatus): boolean {
  return TERMINAL_BUILD_STATUSES.includes(status);
}

/**
 * True when `status` is `queued` or `running`: the build exists and has not ended. Any other value, a status word
 * a service made up included, is false (an unknown word is not proof that a build still runs).
 */
export function isActiveBuildStatus(status: unknown): status is 'queued' | 'running' {
  return status === 'queued' || status === 'running';
}

/** Progress through a Dockerfile: step `index` of `total`, with the step's own text (`RUN make`). */
export interface BuildStepWire {
  /** 1-based step number. */
  index: number;
  /** Number of steps in the Dockerfile, when the engine knows it. */
  total: number;
  /** The instruction being run, as the engine printed it. */
  text: string;
}

/** What `nydus_convert` did for a build: requested by the client, and what the engine honestly applied. */
export interface NydusWire {
  /** The client asked for a nydus conversion. */
  requested: boolean;
  /** What the engine actually did instead (e.g. `"zstd:chunked"`), or `null` when nothing was applied. */
  applied: string | null;
}

/** `GET /builds/{id}`: the state of one build. */
export interface BuildRecordWire {
  build_id: string;
  status: BuildStatus;
  /** The image name as submitted (`name` or `name:tag`). */
  image_name: string;
  /** Where the image was pushed (`registry/namespace/name:tag`); `null` until the build succeeded. */
  image_ref: string | null;
  /** The pushed manifest digest (`sha256:…`); `null` until the build succeeded. */
  digest: string | null;
  /** The failure message of a `failed` build (`"interrupted"` when the service died under it). */
  error: string | null;
  /** 1-based place in the queue while `queued`, otherwise `null`. */
  queue_position: number | null;
  /** The step being run while `running` (the last step once finished), when the engine reports steps. */
  step: BuildStepWire | null;
  nydus: NydusWire;
  /** ISO-8601 timestamps. */
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  /**
   * The builder node that ran (or runs) the build (`rxbuild serve --node-name`, default the host name); `null`
   * while queued. Absent from services older than this field.
   */
  node?: string | null;
}

/** `GET /builds?limit=&cursor=`: one page of builds, newest first. */
export interface BuildsPageWire {
  builds: BuildRecordWire[];
  /** Pass as `cursor` for the next page; `null` on the last page. */
  next_cursor: string | null;
}

/**
 * `GET /builds/{id}/events?after=&limit=` **rxbuild**: a slice of the build's journal in one JSON answer — the same
 * events, ids and times as the log stream, for a reader that wants the history at once (the page opening a
 * 200,000-line log) and then follows live from `last_id` with `Last-Event-ID`. Plain clients never ask for it.
 */
export interface BuildEventsPageWire {
  /** Events with id > `after`, in id order, at most `limit`. */
  events: BuildEventWire[];
  /** Id of the last event in `events` (`after` when there is none): the `Last-Event-ID` to follow live from. */
  last_id: string;
  /** True when no event after these will ever be written (the build ended and this is the end of its journal). */
  complete: boolean;
}

/**
 * `GET /builds/{id}/events?form=journal`: the same slice as {@link BuildEventsPageWire}, each event as the
 * journal stores it, so the service sends its stored lines without decoding them.
 */
export interface BuildJournalPageWire {
  /** Entries with seq > `after`, in order: `seq` is the event id, `data` the log line or the progress message. */
  entries: BuildJournalEntryWire[];
  last_id: string;
  complete: boolean;
}

/** The largest `limit` of `GET /builds/{id}/events` (a few MB of JSON per answer). */
export const EVENTS_PAGE_MAX = 50_000;

/** One stored journal entry (`time`: ISO 8601, UTC; absent in journals written before times were recorded). */
export type BuildJournalEntryWire =
  | { seq: number; type: 'log'; data: string; time?: string }
  | { seq: number; type: 'progress'; data: ProgressMessageWire; time?: string };

/**
 * One journal event. `time` (ISO 8601, UTC) is left out when it equals the previous event's in the same answer
 * (and is absent for events recorded before times were).
 */
export type BuildEventWire =
  | { id: string; type: 'log'; line: string; time?: string }
  | { id: string; type: 'progress'; progress: ProgressMessageWire; time?: string };

/** `POST /builds` answer. */
export interface CreateBuildResponseWire {
  build_id: string;
}

/** Every error answer: `{"error": {"code", "message"}}` with a 4xx/5xx status. */
export interface ErrorBodyWire {
  error: {
    /** Stable machine-readable code, e.g. `unauthorized`, `not_found`, `payload_too_large`. */
    code: string;
    /** One human-readable sentence. */
    message: string;
  };
}

/** A build secret's id: what `RUN --mount=type=secret,id=…` names. */
export const SECRET_ID_RE = /^[A-Za-z0-9_.-]{1,64}$/;

/** Names of the multipart form fields of `POST /builds`. The `context` part is a tar.gz file. */
export const BUILD_FORM_FIELDS = {
  imageName: 'image_name',
  dockerfile: 'dockerfile',
  buildArgs: 'build_args',
  nydusConvert: 'nydus_convert',
  cacheKey: 'cache_key',
  /** **rxbuild**: `"true"` runs every step without the layer cache. */
  noCache: 'no_cache',
  /** **rxbuild**: `"true"` pulls base images again. */
  pull: 'pull',
  /** **rxbuild**: the stage of a multi-stage Dockerfile to build. */
  target: 'target',
  /** **rxbuild**: JSON object of image labels. */
  labels: 'labels',
  context: 'context',
  /** **rxbuild**: a build secret is a field `secret.<id>` whose value is the secret (`RUN --mount=type=secret,id=<id>`). */
  secretPrefix: 'secret.',
} as const;

/** Header carrying the client's idempotency key on `POST /builds`; a repeated key answers the same build. */
export const IDEMPOTENCY_KEY_HEADER = 'idempotency-key';

/**
 * Response header on `GET /builds/{id}/logs` by which a server says that control events (`done`/`error`) come
 * with their own SSE `event:` type ({@link SSE_CONTROL_EVENT}). Against such a server every plain message is a
 * log line, even one that happens to be JSON. Without it the client keeps the reference's rule.
 */
export const CONTROL_EVENTS_HEADER = 'x-rxbuild-control-events';
/** The value of {@link CONTROL_EVENTS_HEADER} meaning "control events are typed". */
export const CONTROL_EVENTS_TYPED = 'typed';

/** SSE `event:` type of the end-of-stream control event (data: {@link ControlMessageWire}). */
export const SSE_CONTROL_EVENT = 'control';
/** SSE `event:` type of a status/progress update (data: {@link ProgressMessageWire}). Optional for servers. */
export const SSE_PROGRESS_EVENT = 'progress';
/**
 * SSE `event:` type of a time mark **rxbuild** (data: {@link TimeMessageWire}): when the events after it were
 * recorded. Sent before the first event of a connection and before every event recorded at another time than the
 * one before it, only alongside typed events. It has no `id`, so it never moves `Last-Event-ID`.
 */
export const SSE_TIME_EVENT = 'time';

/** The data of an {@link SSE_TIME_EVENT}. */
export interface TimeMessageWire {
  /** ISO 8601, UTC, millisecond precision. */
  time: string;
}

/** Plain SSE messages (no `event:` line, i.e. type `message`) are log lines; `data` is the line's text. */
export const SSE_LOG_EVENT = 'message';

/** The control event that ends a log stream. */
export type ControlMessageWire = { done: true } | { error: string };

/** A status update pushed on the log stream (queue position, step progress, phase changes). */
export interface ProgressMessageWire {
  status: BuildStatus;
  queue_position: number | null;
  step: BuildStepWire | null;
}

/** The server sends an SSE comment at least this often so clients can detect a dead connection. */
export const HEARTBEAT_INTERVAL_MS = 15_000;

/** Parse a plain SSE message as a reference-style control event; `null` when it is anything else. */
export function parseReferenceControl(data: string): ControlMessageWire | null {
  // Cheap pre-check: nearly every log line is not a JSON object.
  if (!data.startsWith('{')) return null;
  try {
    const value: unknown = JSON.parse(data);
    if (value && typeof value === 'object' && !Array.isArray(value)) {
      const v = value as Record<string, unknown>;
      if (v.done === true) return { done: true };
      if (typeof v.error === 'string') return { error: v.error };
    }
  } catch {
    // Not JSON: an ordinary log line.
  }
  return null;
}
