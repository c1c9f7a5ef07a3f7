/**
 * `client.builds.list({ status, limit })` and `client.builds.listPage({ limit, cursor, status })` against a real
 * server: the status filter and the page size go to the service (asserted on what it received), pages walk by
 * cursor, bad options fail before any request.
 */
import { createClient, InvalidInputError, type BrowserClient } from '../src/client/browser';
import { startTestServer, type TestServer } from './helpers/test-server';
import { TOKEN, submitOk } from './server-helpers';

let server: TestServer;
let client: BrowserClient;
/** Newest first. */
const ok: string[] = [];
const failed: string[] = [];

beforeAll(async () => {
  server = await startTestServer({ token: TOKEN });
  client = createClient({ baseUrl: server.url, token: TOKEN });
  for (let i = 0; i < 5; i++) {
    const fail = i % 2 === 0;
    const id = await submitOk(server.url, { buildArgs: fail ? { SCRIPT_LINES: '0', SCRIPT_OUTCOME: 'fail' } : { SCRIPT_LINES: '0' } });
    await server.waitForBuild(id);
    (fail ? failed : ok).unshift(id);
  }
});
afterAll(async () => {
  await client.close();
  await server.close();
});

const listPaths = () => server.requests.filter((r) => r.method === 'GET' && r.path.split('?')[0] === '/builds').map((r) => r.path);

it('list(): every build newest first; with status only those, filtered by the service; with limit the newest n', async () => {
  const before = listPaths().length;
  expect((await client.builds.list()).map((b) => b.status)).toEqual(['failed', 'succeeded', 'failed', 'succeeded', 'failed']);
  expect((await client.builds.list({ status: 'failed' })).map((b) => b.buildId)).toEqual(failed);
  expect((await client.builds.list({ limit: 2, status: 'succeeded' })).map((b) => b.buildId)).toEqual(ok);
  expect(listPaths().slice(before)).toEqual(['/builds?limit=1000', '/builds?limit=1000&status=failed', '/builds?limit=2&status=succeeded']);
});

it('listPage(): one page and the cursor of the next; walking the cursors gives each build once', async () => {
  const seen: string[] = [];
  let cursor: string | undefined;
  let pages = 0;
  do {
    const page = await client.builds.listPage({ limit: 2, status: 'failed', cursor });
    expect(page.builds.every((b) => b.status === 'failed')).toBe(true);
    seen.push(...page.builds.map((b) => b.buildId));
    cursor = page.nextCursor ?? undefined;
    pages++;
  } while (cursor);
  expect(seen).toEqual(failed);
  expect(pages).toBe(2);
});

it('a bad status or limit is refused before any request', async () => {
  const before = listPaths().length;
  await expect(client.builds.list({ status: 'done' as never })).rejects.toBeInstanceOf(InvalidInputError);
  await expect(client.builds.listPage({ limit: 0 })).rejects.toBeInstanceOf(InvalidInputError);
  await expect(client.builds.listPage({ limit: 1001 })).rejects.toBeInstanceOf(InvalidInputError);
  expect(listPaths().length).toBe(before);
});
