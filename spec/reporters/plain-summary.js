/**
 * A Jest reporter that ends the run with one plain line, `N passed, N failed` (and `, N skipped` when any were),
 * so tools that read a test run's closing line without knowing Jest's own summary can count it.
 */
class PlainSummaryReporter {
  onRunComplete(_contexts, results) {
    const skipped = results.numPendingTests + results.numTodoTests;
    const line = `${results.numPassedTests} passed, ${results.numFailedTests} failed${skipped ? `, ${skipped} skipped` : ''}`;
    process.stdout.write(`\n${line}\n`);
  }
}

module.exports = PlainSummaryReporter;
