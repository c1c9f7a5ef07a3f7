#!/usr/bin/env bash
# Quick start, end to end, on a fresh Debian machine with Node 20 (run as root):
#   installs what is missing (buildah, docker-registry, busybox-static, runc, slirp4netns; npm ci), starts `rxbuild serve` on a free
#   port with a throw-away data dir, builds examples/hello with live logs, registers a snapshot of the image when
#   this checkout has snapshots, prints the image ref (and snapshot id), and stops the service again.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

# 1. System packages, exactly as .ci/run installs them (only what is missing).
need=()
command -v buildah >/dev/null 2>&1 || need+=(buildah)
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
[ -x /bin/busybox ] || need+=(busybox-static)
# The build sandbox (docs/engine.md, "Security model"): runc runs RUN steps, slirp4netns gives them outbound
# network without reaching this host, ip (iproute2) brings up their loopback.
command -v runc >/dev/null 2>&1 || need+=(runc)
command -v slirp4netns >/dev/null 2>&1 || need+=(slirp4netns)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}"
fi

# 2. Node dependencies, then dist/ (installing no longer builds: the package builds on `prepack`).
say "npm ci && npm run build"
npm ci --no-audit --no-fund
npm run build --silent
rxbuild() { node dist/cli/main.js "$@"; }

# 3. The service, on a free port, with its state in a temp dir that is removed on exit.
work="$(mktemp -d -t rxbuild-demo.XXXXXX)"
serve_pid=""
cleanup() {
  if [ -n "$serve_pid" ] && kill -0 "$serve_pid" 2>/dev/null; then
    say "stopping the service"
    kill -INT "$serve_pid" 2>/dev/null || true
    wait "$serve_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export RXBUILD_TOKEN="demo-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
say "starting rxbuild serve (data dir $work/data)"
mkfifo "$work/serve.out"
# Started directly (not through the rxbuild function) so that $! is the service itself and gets the SIGINT.
node dist/cli/main.js serve --port 0 --data-dir "$work/data" --json >"$work/serve.out" 2>"$work/serve.err" &
serve_pid=$!
# The first line on stdout is {"type":"listening","url":…}, printed once the service accepts requests.
exec 3<"$work/serve.out"
if ! IFS= read -r listening <&3; then
  echo "rxbuild serve did not start:" >&2
  cat "$work/serve.err" >&2
  exit 1
fi
RXBUILD_URL="$(node -e 'process.stdout.write(JSON.parse(process.argv[1]).url)' "$listening")"
export RXBUILD_URL
echo "service listening on $RXBUILD_URL"

# 4. Build the example with its live logs; the result (image ref, digest) also goes to a metadata file.
say "rxbuild build examples/hello -t hello:demo"
rxbuild build examples/hello -t hello:demo --metadata-file "$work/build.json"
image_ref="$(node -e 'process.stdout.write(require(process.argv[1]).imageRef)' "$work/build.json")"

# 5. Register a snapshot of the image, when this checkout has the snapshot commands.
snapshot_id=""
if rxbuild --help | grep -E '^ +snapshot\b' >/dev/null; then
  say "rxbuild snapshot create --image $image_ref"
  rxbuild snapshot create --image "$image_ref" --alias hello-demo --metadata-file "$work/snapshot.json"
  snapshot_id="$(node -e 'process.stdout.write(require(process.argv[1]).snapshotId)' "$work/snapshot.json")"
fi

say "done"
echo "image ref:   $image_ref"
[ -n "$snapshot_id" ] && echo "snapshot id: $snapshot_id"
exit 0
