/**
 * The content-addressed context upload, an **rxbuild** extension of the wire protocol (docs/api.md, "Contexts
 * by content"). A client sends the manifest of its context (path, type, mode, size and sha256 of every entry),
 * asks which file contents the service lacks, uploads only those, and submits the build by manifest. A service
 * without the extension answers `404` to {@link CONTENTS_MISSING_PATH}; the client then uploads a tar.gz as the
 * reference protocol does.
 *
 * @packageDocumentation
 */

/** `POST`: `{"digests": [...]}` → `{"missing": [...]}`. */
export const CONTENTS_MISSING_PATH = 'contents/missing';
/** `POST`: a tar (optionally `Content-Encoding: gzip`) whose entries are named by their digest. */
export const CONTENTS_UPLOAD_PATH = 'contents';
/** `POST /builds` with this content type (optionally gzip-encoded) is a build by manifest. */
export const MANIFEST_CONTENT_TYPE = 'application/vnd.rxbuild.manifest+json';

/** A content digest: `sha256:` and 64 lower-case hex digits. */
export const CONTENT_DIGEST_RE = /^sha256:[0-9a-f]{64}$/;

/** One entry of a context manifest. Paths are relative, `/`-separated, without `.` or `..` components. */
export type ManifestEntryWire =
  | { path: string; type: 'file'; mode: number; size: number; digest: string }
  | { path: string; type: 'directory'; mode: number }
  | { path: string; type: 'symlink'; target: string };

/** `POST /contents/missing` request. */
export interface MissingRequestWire {
  digests: string[];
}

/** `POST /contents/missing` answer: the digests of the request this namespace has to upload. */
export interface MissingResponseWire {
  missing: string[];
}

/** `POST /contents` answer. */
export interface ContentsUploadedWire {
  stored: number;
}

/**
 * `POST /builds` by manifest. The build fields are those of the multipart form, typed (`build_args` and
 * `labels` as objects, flags as booleans).
 */
export interface ManifestBuildRequestWire {
  image_name: string;
  dockerfile?: string;
  build_args?: Record<string, string>;
  nydus_convert?: boolean;
  cache_key?: string;
  no_cache?: boolean;
  pull?: boolean;
  target?: string;
  labels?: Record<string, string>;
  /** Build secrets by id (as the `secret.<id>` form fields of a multipart submit). */
  secrets?: Record<string, string>;
  manifest: ManifestEntryWire[];
}
