//! `connect`: open N connections (at the ramp rate) and hold them; measures connects/s,
//! handshake latency and failures.

use super::{ConnPlan, Plan, Scenario};
use crate::error::Error;

#[derive(Debug, Clone)]
pub struct Connect {
    pub conns: usize,
}

impl Scenario for Connect {
    fn name(&self) -> &'static str {
        "connect"
    }

    fn plan(&self) -> Result<Plan, Error> {
        super::check_conns(self.conns)?;
        Ok(Plan {
            rooms: Vec::new(),
            room_publishers: Vec::new(),
            conns: vec![
                ConnPlan {
                    room: None,
                    publisher: None
                };
                self.conns
            ],
            rate: 0.0,
        })
    }
}
