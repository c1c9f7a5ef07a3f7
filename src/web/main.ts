/**
 * The rxbuild page, served by `rxbuild serve` at `/`: token entry, the live builds list, one build's live log,
 * and snapshot details. Routes live in the URL fragment (`#/builds/<id>`, `#/builds/<id>/L<n>` for a line,
 * `#/snapshots/<id>`), so links and the back button work and the server serves one static page.
 *
 * The token is kept in `sessionStorage` (this tab only, gone when it closes) and sent as a bearer token on API
 * calls; the page itself is served without one.
 *
 * @packageDocumentation
 */
import { AuthError, UnauthorizedError, createClient, type BrowserClient } from '../client/browser';
import { BuildView } from './build-view';
import { BuildsList } from './builds-list';
import { byId, h } from './dom';
import { formatTime } from './format';

const TOKEN_KEY = 'rxbuild.token';

const form = byId<HTMLFormElement>('token-form');
const tokenInput = byId<HTMLInputElement>('token-input');
const forgetButton = byId<HTMLButtonElement>('token-forget');
const connection = byId('connection');
const snapshotView = byId('snapshot-view');
const snapshotMeta = byId<HTMLDListElement>('snapshot-meta');

let session: { client: BrowserClient; list: BuildsList; view: BuildView } | undefined;

function readToken(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null; // Storage disabled: the token lives as long as the page.
  }
}

function writeToken(token: string | null): void {
  try {
    if (token === null) sessionStorage.removeItem(TOKEN_KEY);
    else sessionStorage.setItem(TOKEN_KEY, token);
  } catch {
    // See readToken.
  }
}

function setConnection(text: string, bad = false): void {
  if (connection.textContent !== text) connection.textContent = text;
  connection.classList.toggle('bad', bad);
}

/** Drop the current client (its watches detach; none of them cancels a build). */
async function disconnect(): Promise<void> {
  const s = session;
  session = undefined;
  if (!s) return;
  s.list.stop();
  s.view.close();
  await s.client.close().catch(() => undefined);
}

function onAuthError(_err: AuthError): void {
  document.body.classList.remove('connected');
  setConnection('The service refused this token (401). Enter the right one.', true);
  writeToken(null);
  void disconnect();
  tokenInput.focus();
}

async function connect(token: string): Promise<void> {
  await disconnect();
  let client: BrowserClient;
  try {
    client = createClient({
      token,
      // A Cancel whose DELETE failed (after its retries) must not go unnoticed.
      onTeardownError: (err) => setConnection(`Could not cancel build ${err.buildId}: ${err.message}`, true),
    });
  } catch (err) {
    setConnection((err as Error).message, true);
    tokenInput.focus();
    return;
  }
  writeToken(token);
  setConnection('Connecting…');
  const list = new BuildsList(client, {
    onConnection: (state) => {
      if (state.ok) setConnection(`Connected to ${location.host}`);
      else if (state.auth) onAuthError(new UnauthorizedError(state.message));
      else setConnection(`Service unreachable, retrying: ${state.message}`, true);
    },
  });
  const view = new BuildView(client, list, onAuthError);
  session = { client, list, view };
  forgetButton.hidden = false;
  document.body.classList.add('connected');
  tokenInput.value = '';
  tokenInput.placeholder = 'saved for this tab';
  tokenInput.required = false;
  list.start();
  route(false);
}

/** Show what the fragment names. `focus`: the reader navigated, so move focus to what opened. */
function route(focus: boolean): void {
  const s = session;
  const m = /^#\/(builds|snapshots)\/([^/]+)(?:\/L(\d+))?$/.exec(location.hash);
  const kind = m?.[1];
  const id = m ? decodeURIComponent(m[2]) : undefined;
  if (!s) return;
  if (kind === 'builds' && id) {
    snapshotView.hidden = true;
    s.view.open(id, focus, m?.[3] ? Number(m[3]) : 0);
  } else if (kind === 'snapshots' && id) {
    s.view.close();
    void showSnapshot(s.client, id, focus);
  } else {
    s.view.close();
    snapshotView.hidden = true;
  }
}

async function showSnapshot(client: BrowserClient, id: string, focus: boolean): Promise<void> {
  snapshotView.hidden = false;
  snapshotMeta.replaceChildren(h('dt', {}, 'Snapshot'), h('dd', {}, id));
  if (focus) byId('snapshot-heading').focus();
  try {
    const snap = await client.snapshots.get(id);
    const rows: Array<[string, string | Node]> = [
      ['Snapshot', h('code', {}, snap.snapshotId)],
      ['Image', h('code', {}, snap.imageRef)],
      ['Digest', h('code', {}, snap.digest)],
      ['Architecture', snap.architecture],
      ['Aliases', snap.aliases.length ? snap.aliases.map((a) => `@${a}`).join(', ') : 'none'],
      ['Status', snap.status],
      ['Registered', formatTime(snap.createdAt)],
    ];
    snapshotMeta.replaceChildren(...rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
  } catch (err) {
    if (err instanceof AuthError) return onAuthError(err);
    snapshotMeta.replaceChildren(h('dt', {}, 'Error'), h('dd', {}, (err as Error).message));
  }
}

form.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const token = tokenInput.value.trim();
  if (token) void connect(token);
  else if (!session) tokenInput.focus();
});

forgetButton.addEventListener('click', () => {
  document.body.classList.remove('connected');
  writeToken(null);
  void disconnect();
  forgetButton.hidden = true;
  tokenInput.placeholder = '';
  tokenInput.required = true;
  setConnection('Token forgotten. Enter a token to see builds.');
  tokenInput.focus();
});

window.addEventListener('hashchange', () => route(true));

const saved = readToken();
if (saved) {
  void connect(saved);
} else {
  forgetButton.hidden = true;
  setConnection('Enter the API token to see builds.');
  tokenInput.focus();
}
