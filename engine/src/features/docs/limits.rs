//! The documents feature's limits: what one document, one change and one shard may hold.
//!
//! Invariant: every number here is enforced where a change or a join arrives, and a limit hit
//! is answered with its own error code (docs/PROTOCOL.md, "Documents").

/// Text a document may hold (`doc_too_large`): a megabyte of plain text is a long book, and
/// the whole text is sent to each joining editor in one frame.
pub const DOC_BYTES_MAX: usize = 1 << 20;

/// Ops in one change (`too_many_ops`): an editor sends what one keystroke or paste did; the
/// transform's cost grows with ops times the changes it crosses.
pub const OPS_PER_CHANGE_MAX: usize = 256;

/// Bytes one insert may carry (`insert_too_large`): a large paste, well under the frame limit.
pub const INSERT_BYTES_MAX: usize = 64 << 10;

/// Changes kept for transform and catch-up (`version_too_old` past it): ten thousand versions
/// is minutes of a busy document; an editor further behind resyncs from `doc:state`.
pub const OPS_KEPT_MAX: usize = 10_000;

/// Bytes of kept changes per document: the oldest go first past it, so large pastes cannot
/// make the kept history the biggest thing on the shard.
pub const OPS_KEPT_BYTES_MAX: usize = 4 << 20;

/// Editing clients remembered per document for idempotent resubmits; past it the one whose
/// last change is the oldest is forgotten (its resubmit of a change that old would apply again,
/// but it is far behind `OPS_KEPT_MAX` by then on a busy document).
pub const DOC_CLIENTS_MAX: usize = 4096;

/// Connections editing one document (`doc_full`): every change goes to every editor.
pub const DOC_EDITORS_MAX: usize = 10_000;

/// Bytes of text and kept changes all of a shard's documents hold together (`doc_limit` for a
/// change that could take them past it): 512 MiB.
pub const DOC_BYTES_PER_SHARD_MAX: usize = 512 << 20;

/// Bytes of a `client` id (idempotent resubmits): a UUID is 36.
pub const CLIENT_ID_BYTES_MAX: usize = 64;

/// How often a document's cursors go out by default (`--cursor-interval-ms`): seed 002's
/// throttle, 20 updates a second, smooth to the eye.
pub const CURSOR_INTERVAL_DEFAULT: std::time::Duration = std::time::Duration::from_millis(50);

/// Editors listed in `doc:state` (`more` counts the rest).
pub const DOC_USERS_LISTED_MAX: usize = 1000;

/// Op pairs one change's transform may take (the change's ops times the ops applied since its
/// base): past it the change is refused with `version_too_old` and the client resyncs, so no
/// change can hold its shard for long.
pub const TRANSFORM_PAIRS_MAX: usize = 1 << 20;

/// Op pairs transformed per request-budget unit charged to a change's author, beyond the
/// change's own unit: a pair takes about 85 ns in a change of many ops and 24 ns in a change
/// of one (`benches/micro/transform.rs`), so a unit is at most ~90 µs of the shard, about what
/// one small message costs end to end. A script that bases
/// its changes on old versions is slowed by its own budget instead of holding the shard (the
/// most a change can take, `TRANSFORM_PAIRS_MAX`, costs 1,024 units).
pub const TRANSFORM_PAIRS_PER_UNIT: usize = 1024;

/// Ops a change may have once transformed (deletes split around inserts): past it the change
/// is refused with `version_too_old`, so `doc:operation` stays a bounded frame.
pub const TRANSFORMED_OPS_MAX: usize = 4 * OPS_PER_CHANGE_MAX;

/// Cursors per `cursor:update` frame: a document with more moving cursors gets several
/// frames, each well within a reader's send queue.
pub const CURSORS_PER_FRAME_MAX: usize = 500;

/// Bytes a kept change costs beyond its ops (its record, its author, its origin): counted so
/// that empty changes are not free.
pub const CHANGE_OVERHEAD_BYTES: usize = 96;
