/**
 * Ctrl+C for commands that only watch (no build of their own to cancel): count SIGINTs while a command runs.
 * Builds started by this process get their Ctrl+C handling from the client library's shared SIGINT module.
 *
 * @packageDocumentation
 */

/**
 * Call `onSigint(n)` for the n-th SIGINT until the returned function is called. While installed, Node's default
 * (exit at once) is off, so the command decides what Ctrl+C means and when to exit.
 */
export function trapSigint(onSigint: (count: number) => void): () => void {
  let count = 0;
  const listener = (): void => onSigint(++count);
  process.on('SIGINT', listener);
  return () => process.off('SIGINT', listener);
}
