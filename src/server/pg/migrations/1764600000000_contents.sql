-- Up Migration
-- The content store of contexts by content, shared by every node (docs/deploy.md): a content uploaded to one
-- node is present for its namespace on every node. Per namespace, as in the file store: a namespace only ever
-- sees and uses what it uploaded itself.
CREATE TABLE rxbuild_contents (
  namespace text NOT NULL,
  -- hex of the sha256 digest
  digest text NOT NULL,
  size bigint NOT NULL,
  -- Least recently used go first when the store is over its cap.
  used_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (namespace, digest)
);
CREATE INDEX rxbuild_contents_lru ON rxbuild_contents (used_at);

-- The bytes, in 1 MiB parts.
CREATE TABLE rxbuild_content_parts (
  namespace text NOT NULL,
  digest text NOT NULL,
  part integer NOT NULL,
  data bytea NOT NULL,
  PRIMARY KEY (namespace, digest, part),
  FOREIGN KEY (namespace, digest) REFERENCES rxbuild_contents ON DELETE CASCADE
);

-- Down Migration
DROP TABLE rxbuild_content_parts;
DROP TABLE rxbuild_contents;
