-- Up Migration
-- Journals in chunks (issue 16, journal throughput): one row holds the events one write appended (at most
-- CHUNK_EVENTS of them, LF-separated JSON lines, the same lines events.jsonl holds). A row per event cost
-- PostgreSQL a heap tuple and an index entry per log line, which capped one build near 50,000 lines/s here.
CREATE TABLE rxbuild_event_chunks (
  build_id text COLLATE "C" NOT NULL REFERENCES rxbuild_builds ON DELETE CASCADE,
  first_seq integer NOT NULL,
  last_seq integer NOT NULL,
  events text NOT NULL,
  PRIMARY KEY (build_id, last_seq)
);
INSERT INTO rxbuild_event_chunks (build_id, first_seq, last_seq, events) SELECT build_id, seq, seq, event FROM rxbuild_events;
DROP TABLE rxbuild_events;

-- The fencing token: incremented by every claim. The node running a build writes its journal and record only
-- while the build's claim is still the one it got, so a node that lost its lease (paused, cut off, or replaced
-- by a new process under the same name) can never write into a build after that.
ALTER TABLE rxbuild_builds ADD COLUMN claim integer NOT NULL DEFAULT 0;

-- Down Migration
ALTER TABLE rxbuild_builds DROP COLUMN claim;
CREATE TABLE rxbuild_events (
  build_id text NOT NULL REFERENCES rxbuild_builds ON DELETE CASCADE,
  seq integer NOT NULL,
  event text NOT NULL,
  PRIMARY KEY (build_id, seq)
);
INSERT INTO rxbuild_events (build_id, seq, event)
  SELECT c.build_id, c.first_seq + ord::int - 1, line FROM rxbuild_event_chunks c, unnest(string_to_array(c.events, E'\n')) WITH ORDINALITY AS t(line, ord);
DROP TABLE rxbuild_event_chunks;
