//! `echo`: every connection publishes at a fixed rate and measures its own messages coming
//! back (from an echo server, or through a room of its own).

use super::{ConnPlan, Plan, Scenario};
use crate::error::Error;

#[derive(Debug, Clone)]
pub struct Echo {
    pub conns: usize,
    pub rate: f64,
    pub room_prefix: String,
}

impl Scenario for Echo {
    fn name(&self) -> &'static str {
        "echo"
    }

    fn plan(&self) -> Result<Plan, Error> {
        super::check_conns(self.conns)?;
        if self.rate.is_nan() || self.rate <= 0.0 {
            return Err(Error::Option {
                name: "rate",
                reason: "must be positive".into(),
            });
        }
        Ok(Plan {
            rooms: (0..self.conns)
                .map(|i| format!("{}-echo-{i}", self.room_prefix))
                .collect(),
            room_publishers: (0..self.conns).map(|i| vec![i as u32]).collect(),
            conns: (0..self.conns)
                .map(|i| ConnPlan {
                    room: Some(i),
                    publisher: Some((i as u32, 0)),
                })
                .collect(),
            rate: self.rate,
        })
    }
}
