//! Comparing secrets (room passwords) in constant time, so the time a wrong guess takes
//! says nothing about how much of it was right.
//!
//! Invariant: [`secrets_equal`] takes time that depends only on the lengths of its inputs,
//! never on their contents.

use subtle::ConstantTimeEq;

/// Whether `given` equals `expected`, comparing every byte whatever the first difference.
/// The length is not hidden: a guess of the wrong length is refused at once.
pub fn secrets_equal(given: &[u8], expected: &[u8]) -> bool {
    given.ct_eq(expected).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_only_when_every_byte_is() {
        assert!(secrets_equal(b"s3cret", b"s3cret"));
        assert!(secrets_equal(b"", b""));
        assert!(!secrets_equal(b"s3cret", b"s3creT"));
        assert!(!secrets_equal(b"X3cret", b"s3cret"));
        assert!(!secrets_equal(b"s3cre", b"s3cret"));
        assert!(!secrets_equal(b"s3crets", b"s3cret"));
        assert!(!secrets_equal(b"", b"s3cret"));
    }
}
