//! The documents feature's application errors, each with its stable `code`.
//!
//! Invariant: every refusal names the number it hit; nothing of a refused change applied.

use super::document::ChangeError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocError {
    #[error(transparent)]
    Change(#[from] ChangeError),
    #[error("op {index} is not an op: {expected}")]
    BadOp {
        index: usize,
        expected: &'static str,
    },
    #[error("not editing document `{doc}`")]
    NotInDoc { doc: String },
    #[error("already editing document `{doc}`")]
    AlreadyInDoc { doc: String },
    #[error("name the document (`doc`): only a /ws/collab/{{doc}} connection may leave it out")]
    NoDoc,
    #[error("document `{doc}` has {max} editors already")]
    DocFull { doc: String, max: usize },
    #[error("this shard's documents hold {max} bytes already; try later")]
    ShardFull { max: usize },
}

impl DocError {
    pub fn code(&self) -> &'static str {
        match self {
            DocError::Change(c) => match c {
                ChangeError::InvalidOp { .. } | ChangeError::EmptyOp { .. } => "invalid_op",
                ChangeError::TooManyOps { .. } => "too_many_ops",
                ChangeError::InsertTooLarge { .. } => "insert_too_large",
                ChangeError::DocTooLarge { .. } => "doc_too_large",
                ChangeError::VersionTooOld { .. } | ChangeError::TooFarBehind { .. } => {
                    "version_too_old"
                }
                ChangeError::InvalidVersion { .. } => "invalid_version",
            },
            DocError::BadOp { .. } => "invalid_op",
            DocError::NotInDoc { .. } => "not_in_doc",
            DocError::AlreadyInDoc { .. } => "already_in_doc",
            DocError::NoDoc => "missing_field",
            DocError::DocFull { .. } => "doc_full",
            DocError::ShardFull { .. } => "doc_limit",
        }
    }
}
