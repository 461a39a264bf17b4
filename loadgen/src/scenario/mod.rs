//! Scenarios: each turns its parameters into a [`Plan`] (which connection joins which room and
//! who publishes); the runner executes any plan the same way, so a new scenario is a small file.
//!
//! Invariant: in a plan, every publisher is a member of the room it publishes to, and
//! `room_publishers[r][i]` is the publisher whose marker carries `room_pub == i`.

mod connect;
mod echo;
mod fanout;

pub use connect::Connect;
pub use echo::Echo;
pub use fanout::Fanout;

use crate::error::Error;

/// One connection's part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnPlan {
    /// Index into [`Plan::rooms`]; `None`: it only connects.
    pub room: Option<usize>,
    /// (global publisher id, index among its room's publishers).
    pub publisher: Option<(u32, u32)>,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub rooms: Vec<String>,
    /// Global publisher ids per room, by their `room_pub` index.
    pub room_publishers: Vec<Vec<u32>>,
    pub conns: Vec<ConnPlan>,
    /// Messages per second per publisher.
    pub rate: f64,
}

impl Plan {
    pub fn publishers(&self) -> usize {
        self.room_publishers.iter().map(Vec::len).sum()
    }

    /// Checks the invariant above (a broken plan is a bug in its scenario).
    pub fn assert_consistent(&self) {
        for (i, c) in self.conns.iter().enumerate() {
            if let Some((global, room_pub)) = c.publisher {
                let room = c.room.expect("publishers are room members");
                assert_eq!(
                    self.room_publishers[room][room_pub as usize], global,
                    "conn {i}"
                );
            }
        }
    }
}

/// Every scenario needs a connection to measure anything.
fn check_conns(conns: usize) -> Result<(), Error> {
    if conns == 0 {
        return Err(Error::Option {
            name: "conns",
            reason: "must be at least 1".into(),
        });
    }
    Ok(())
}

/// A scenario of the load generator.
pub trait Scenario {
    fn name(&self) -> &'static str;
    fn plan(&self) -> Result<Plan, Error>;
}
