import { BUILD_STATUSES, isActiveBuildStatus, isTerminalBuildStatus, parseReferenceControl } from '../src/shared/wire';

describe('wire helpers', () => {
  it('reads the reference control events from plain messages', () => {
    expect(parseReferenceControl('{"done": true}')).toEqual({ done: true });
    expect(parseReferenceControl('{"error": "boom"}')).toEqual({ error: 'boom' });
  });
  it('treats everything else as a log line', () => {
    expect(parseReferenceControl('STEP 1/2: FROM scratch')).toBeNull();
    expect(parseReferenceControl('{"done": false}')).toBeNull();
    expect(parseReferenceControl('{"error": {"nested": 1}}')).toBeNull();
    expect(parseReferenceControl('[1,2]')).toBeNull();
    expect(parseReferenceControl('{not json')).toBeNull();
  });
  it('knows which statuses are terminal', () => {
    expect(['queued', 'running'].map((s) => isTerminalBuildStatus(s as never))).toEqual([false, false]);
    expect(['succeeded', 'failed', 'cancelled'].map((s) => isTerminalBuildStatus(s as never))).toEqual([true, true, true]);
  });
  it('lists every status in order; queued and running, and nothing else, are active', () => {
    expect(BUILD_STATUSES).toEqual(['queued', 'running', 'succeeded', 'failed', 'cancelled']);
    expect(BUILD_STATUSES.filter(isActiveBuildStatus)).toEqual(['queued', 'running']);
    expect(BUILD_STATUSES.filter((s) => !isActiveBuildStatus(s)).every(isTerminalBuildStatus)).toBe(true);
    expect(['finished', 'preparing', '', undefined, null, 1].some(isActiveBuildStatus)).toBe(false);
  });
});
