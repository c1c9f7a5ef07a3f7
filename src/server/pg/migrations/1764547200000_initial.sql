-- Up Migration
-- The shared state of every rxbuild node (docs/deploy.md). Applied at start by node-pg-migrate.

-- Every node that ever started; seen_at is its heartbeat (the database's clock, so node clocks never matter).
CREATE TABLE rxbuild_nodes (
  name text PRIMARY KEY,
  started_at timestamptz NOT NULL DEFAULT now(),
  seen_at timestamptz NOT NULL DEFAULT now()
);

-- One row per build. `stored` is what build.json holds in the file store (record + what is needed to run it).
-- "C" collation: the list order (created_at, build_id) is plain byte order, as the file store sorts.
CREATE TABLE rxbuild_builds (
  build_id text COLLATE "C" PRIMARY KEY,
  created_at text COLLATE "C" NOT NULL,
  status text NOT NULL,
  node text,
  idempotency_key text UNIQUE,
  -- True once the journal is complete: set after the build's last event is written.
  sealed boolean NOT NULL DEFAULT false,
  -- A DELETE reached some node while another runs the build (the runner also hears it by NOTIFY).
  cancel_requested boolean NOT NULL DEFAULT false,
  stored jsonb NOT NULL
);
CREATE INDEX rxbuild_builds_list ON rxbuild_builds (created_at DESC, build_id DESC);
CREATE INDEX rxbuild_builds_queue ON rxbuild_builds (created_at, build_id) WHERE status = 'queued';
CREATE INDEX rxbuild_builds_running ON rxbuild_builds (node) WHERE status = 'running';

-- The journal: one row per event, `event` is the same JSON line events.jsonl holds.
CREATE TABLE rxbuild_events (
  build_id text NOT NULL REFERENCES rxbuild_builds ON DELETE CASCADE,
  seq integer NOT NULL,
  event text NOT NULL,
  PRIMARY KEY (build_id, seq)
);

-- Uploaded contexts (tar.gz, in 1 MiB parts) until the build that needs them ends: any node can run any build.
CREATE TABLE rxbuild_contexts (
  build_id text NOT NULL REFERENCES rxbuild_builds ON DELETE CASCADE,
  part integer NOT NULL,
  data bytea NOT NULL,
  PRIMARY KEY (build_id, part)
);

CREATE TABLE rxbuild_snapshots (
  snapshot_id text PRIMARY KEY,
  seq bigserial UNIQUE,
  image_ref text NOT NULL,
  digest text NOT NULL,
  architecture text NOT NULL,
  tags jsonb NOT NULL,
  ttl integer,
  created_at text NOT NULL,
  retired_at text,
  idempotency_key text UNIQUE
);

-- alias → holder; `seq` orders a holder's aliases by when it got them.
CREATE TABLE rxbuild_aliases (
  alias text PRIMARY KEY,
  snapshot_id text NOT NULL REFERENCES rxbuild_snapshots,
  seq bigserial
);
CREATE INDEX rxbuild_aliases_holder ON rxbuild_aliases (snapshot_id, seq);

-- Down Migration
DROP TABLE rxbuild_aliases;
DROP TABLE rxbuild_snapshots;
DROP TABLE rxbuild_contexts;
DROP TABLE rxbuild_events;
DROP TABLE rxbuild_builds;
DROP TABLE rxbuild_nodes;
