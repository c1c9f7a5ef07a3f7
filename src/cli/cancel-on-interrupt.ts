/**
 * Ctrl+C during `rxbuild build`.
 *
 * First Ctrl+C: say "cancelling build <id> — press Ctrl+C again to stop waiting", unsubscribe from the build
 * Observable (the library's teardown sends exactly one `DELETE /builds/{id}`, or, during the upload, deletes
 * the build as soon as the POST returns its id), then wait for `client.close()`, which awaits that DELETE.
 * Confirmed → outcome `cancelled` (exit 130); not confirmed → an error that says to check the build.
 *
 * Second Ctrl+C: stop waiting for the confirmation, but never abort the DELETE: the CLI leaves only once the
 * DELETE request has been handed to the server (the library's public `onTeardown` hook says so: `sent`), because a request already received is carried out by the server whether or not anyone reads the
 * answer. Until then it keeps waiting and says why.
 *
 * @packageDocumentation
 */
import { writeFile } from 'node:fs/promises';
import type { CliClient } from './client';
import { describeError, ExitCode, hasStatus } from './errors';
import { cancelledMessage, type Following } from './follow';
import { trapSigint } from './interrupt';
import { jsonResult, type BuildOutcome, type Renderer } from './render';

/** The Ctrl+C side of a running build. */
export interface InterruptHandle {
  /** Settles after a Ctrl+C, once the cancel is confirmed (or given up on); never otherwise. */
  readonly outcome: Promise<BuildOutcome>;
  /** True once Ctrl+C was pressed (or the output closed). */
  fired(): boolean;
  /** True when it was the output that closed (exit 141, as a process killed by SIGPIPE). */
  outputClosed(): boolean;
  /** Remove the SIGINT listener and the `sent` listener. */
  release(): void;
}

/**
 * Install the Ctrl+C behaviour for one build followed by `following`. `stdoutClosed` settles when nobody reads the
 * output any more (`rxbuild build … | head -3`): that cancels the build like a first Ctrl+C, quietly.
 */
export function cancelOnInterrupt(client: CliClient, following: Following, renderer: Renderer, stdoutClosed?: Promise<void>): InterruptHandle {
  let fired = false;
  let deleteSent = false;
  let stopWaitingRequested = false;
  let released = false;
  let settle!: (o: BuildOutcome) => void;
  const outcome = new Promise<BuildOutcome>((resolve) => (settle = resolve));

  let stopListening: (() => void) | undefined;
  const onDeleteSent = (): void => {
    if (deleteSent) return;
    deleteSent = true;
    if (stopWaitingRequested) leaveWithoutConfirmation();
  };

  const leaveWithoutConfirmation = (): void => {
    const id = following.buildId();
    renderer.notice(
      `stopped waiting: the cancel of build ${id ?? '(unknown)'} reached the server but is not confirmed yet` +
        (id ? ` — check with: rxbuild builds get ${id}` : ''),
    );
    client.stopWaiting();
    // One turn of the event loop so the request bytes leave this process before it exits.
    setImmediate(() => settle({ kind: 'cancelled', buildId: id, message: `build ${id} cancel requested (not confirmed)` }));
  };

  /** Unsubscribe (the library sends the one DELETE), then wait for close() to confirm it. */
  const cancel = (suffix: string): void => {
    fired = true;
    stopListening = client.onDeleteSent(onDeleteSent);
    const id = following.buildId();
    renderer.notice((id ? `cancelling build ${id}` : 'cancelling the build (not submitted yet)') + suffix);
    following.stop();
    client.close().then(
      () => {
        const bid = following.buildId();
        const failure = client.teardownFailures[0];
        if (failure && hasStatus(failure, 409)) {
          // The build finished on its own just before the DELETE arrived: nothing is left running.
          settle({ kind: 'cancelled', buildId: bid, message: `build ${bid} had already finished; nothing was left to cancel` });
          return;
        }
        if (!failure) {
          settle({ kind: 'cancelled', buildId: bid, message: cancelledMessage(bid) });
          return;
        }
        const d = describeError(failure.cause ?? failure, { url: client.url });
        settle({
          kind: 'error',
          buildId: bid,
          code: 'teardown_failed',
          message: `could not confirm the cancel of build ${bid ?? '(unknown)'}: ${d.message}` + (bid ? ` — check with: rxbuild builds get ${bid}` : ''),
        });
      },
      (err: unknown) => {
        const d = describeError(err, { url: client.url });
        settle({ kind: 'error', buildId: following.buildId(), code: d.code, message: `while cancelling: ${d.message}` });
      },
    );
  };

  let closedOutput = false;
  void stdoutClosed?.then(() => {
    if (released || fired) return;
    closedOutput = true;
    cancel(' — the output was closed');
  });

  const releaseSigint = trapSigint((count) => {
    if (count === 1 && !fired) {
      cancel(' — press Ctrl+C again to stop waiting');
      return;
    }
    if (stopWaitingRequested) return;
    stopWaitingRequested = true;
    if (deleteSent) leaveWithoutConfirmation();
    else renderer.notice('the cancel has not reached the server yet; leaving as soon as it has (it is never aborted)');
  });

  return {
    outcome,
    fired: () => fired,
    outputClosed: () => closedOutput,
    release: () => {
      released = true;
      releaseSigint();
      stopListening?.();
    },
  };
}

/**
 * Run one followed build (or snapshot) to its end with Ctrl+C handling, render the outcome, optionally write it
 * to `metadataFile`, and map it to the exit code: 0 succeeded, 130 cancelled by Ctrl+C, 141 cancelled because
 * stdout was closed, 2 invalid local input, 1 anything else.
 */
export async function runToExit(
  client: CliClient,
  following: Following,
  renderer: Renderer,
  metadataFile?: string,
  stdoutClosed?: Promise<void>,
): Promise<number> {
  const interrupt = cancelOnInterrupt(client, following, renderer, stdoutClosed);
  try {
    const outcome = await Promise.race([following.outcome, interrupt.outcome]);
    renderer.finish(outcome);
    if (metadataFile) await writeFile(metadataFile, `${JSON.stringify(jsonResult(outcome), null, 2)}\n`);
    if (interrupt.fired()) {
      if (outcome.kind !== 'cancelled') return ExitCode.failed;
      return interrupt.outputClosed() ? ExitCode.outputClosed : ExitCode.interrupted;
    }
    if (outcome.kind === 'succeeded') return ExitCode.ok;
    if (outcome.kind === 'error' && outcome.code === 'invalid_input') return ExitCode.usage;
    return ExitCode.failed;
  } finally {
    interrupt.release();
  }
}
