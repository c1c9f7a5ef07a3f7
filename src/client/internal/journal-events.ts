/**
 * How a build's journal (log lines and progress updates, in id order) turns into the events the client emits. The
 * live follow (`watch`, `build`) and `builds.history` both use it, so one journal reads as the same events either
 * way and the two cannot drift.
 *
 * @packageDocumentation
 */
import { isActiveBuildStatus, type ProgressMessageWire } from '../../shared/wire';
import type { BuildHistoryEvent } from '../types';

/** Where the events go: a `BuildEvent[]` or a `BuildHistoryEvent[]`. */
interface EventSink {
  push(event: BuildHistoryEvent): unknown;
}

/**
 * The state of one reader of one build's journal. Only changes become events: a service repeating its progress
 * (on every reconnect, or in the journal) must not look like news.
 */
export class JournalEvents {
  private phase: 'queued' | 'running' | undefined;
  private queuePosition: number | null | undefined;
  private stepKey: string | undefined;

  constructor(private readonly buildId: string) {}

  /** A log line, after a `running` status when the build was not known to run (output means it runs). */
  log(out: EventSink, id: string, line: string, time: string | undefined): void {
    const buildId = this.buildId;
    if (this.phase !== 'running') {
      this.phase = 'running';
      out.push({ type: 'status', phase: 'running', buildId });
    }
    out.push(time ? { type: 'log', buildId, id, line, time } : { type: 'log', buildId, id, line });
  }

  /**
   * A progress update: a `queued` status for a new queue place, `running` once, and each new step. Terminal
   * statuses and status words this client does not know make no status event (the stream's end reports the end).
   */
  progress(out: EventSink, p: ProgressMessageWire | null | undefined, time: string | undefined): void {
    if (!p || typeof p.status !== 'string') return;
    const buildId = this.buildId;
    if (isActiveBuildStatus(p.status) && (p.status !== this.phase || (p.status === 'queued' && p.queue_position !== this.queuePosition))) {
      this.phase = p.status;
      this.queuePosition = p.queue_position;
      out.push(p.status === 'queued' ? { type: 'status', phase: 'queued', buildId, queuePosition: p.queue_position } : { type: 'status', phase: 'running', buildId });
    }
    if (p.step) {
      const key = `${p.step.index}/${p.step.total}:${p.step.text}`;
      if (key !== this.stepKey) {
        this.stepKey = key;
        const { index, total, text } = p.step;
        out.push(time ? { type: 'step', buildId, index, total, text, time } : { type: 'step', buildId, index, total, text });
      }
    }
  }
}
