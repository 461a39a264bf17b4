//! The shared feature's application errors, each with its stable `code`.
//!
//! Invariant: a refused write changed nothing.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SharedError {
    #[error("not a member of `{topic}`")]
    NotMember { topic: String },
    #[error("name where: `room` or `doc`")]
    NoTopic,
    #[error("the state is at version {current}, not {expected}")]
    VersionConflict { expected: u64, current: u64 },
    #[error("the shared state would hold {size} bytes in {keys} keys; at most {max} bytes and {max_keys} keys")]
    StateTooLarge {
        size: usize,
        keys: usize,
        max: usize,
        max_keys: usize,
    },
    #[error("a topic has at most {max} channels")]
    TooManyChannels { max: usize },
    #[error("this shard's shared state holds {max} bytes already; try later")]
    ShardFull { max: usize },
}

impl SharedError {
    pub fn code(&self) -> &'static str {
        match self {
            SharedError::NotMember { .. } => "not_in_room",
            SharedError::NoTopic => "missing_field",
            SharedError::VersionConflict { .. } => "version_conflict",
            SharedError::StateTooLarge { .. } => "state_too_large",
            SharedError::TooManyChannels { .. } => "too_many_channels",
            SharedError::ShardFull { .. } => "shard_full",
        }
    }
}
