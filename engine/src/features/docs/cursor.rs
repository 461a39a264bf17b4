//! Cursors in a document: a canvas point (`x`, `y`) or a text caret with an optional
//! selection anchor (code points), one per connection, conflated on the owner.
//!
//! Invariant: a text cursor held by the owner is within the text and moves through every
//! applied op as `operation::transform_position` says, so it stays on its character.

use super::operation::{transform_position, Op};

/// The largest canvas coordinate accepted: any real screen fits, and the JSON stays short.
pub const COORDINATE_MAX: f64 = 1e9;

#[derive(Debug, Clone, PartialEq)]
pub enum Cursor {
    Point {
        x: f64,
        y: f64,
    },
    Text {
        position: usize,
        anchor: Option<usize>,
    },
}

impl Cursor {
    /// The cursor moved through `ops` (a point does not move).
    pub fn follow(&mut self, ops: &[Op]) {
        if let Cursor::Text { position, anchor } = self {
            for op in ops {
                *position = transform_position(*position, op);
                if let Some(a) = anchor.as_mut() {
                    *a = transform_position(*a, op);
                }
            }
        }
    }

    /// Held within a text of `len` code points.
    pub fn clamp(&mut self, len: usize) {
        if let Cursor::Text { position, anchor } = self {
            *position = (*position).min(len);
            if let Some(a) = anchor.as_mut() {
                *a = (*a).min(len);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caret_and_its_anchor_follow_the_text() {
        let mut c = Cursor::Text {
            position: 5,
            anchor: Some(2),
        };
        c.follow(&[Op::insert(0, "ab"), Op::delete(3, 2)]);
        assert_eq!(
            c,
            Cursor::Text {
                position: 5,
                anchor: Some(3)
            }
        );
        c.clamp(4);
        assert_eq!(
            c,
            Cursor::Text {
                position: 4,
                anchor: Some(3)
            }
        );
        let mut p = Cursor::Point { x: 1.5, y: -2.0 };
        p.follow(&[Op::insert(0, "x")]);
        assert_eq!(p, Cursor::Point { x: 1.5, y: -2.0 });
    }
}
