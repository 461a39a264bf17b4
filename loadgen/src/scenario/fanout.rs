//! `fanout`: R rooms, N connections spread over them round-robin, P publishers at a fixed rate
//! each, spread over the rooms the same way. `broadcast` is fanout with one room.

use super::{ConnPlan, Plan, Scenario};
use crate::error::Error;

#[derive(Debug, Clone)]
pub struct Fanout {
    pub name: &'static str,
    pub conns: usize,
    pub rooms: usize,
    pub publishers: usize,
    pub rate: f64,
    pub room_prefix: String,
}

impl Scenario for Fanout {
    fn name(&self) -> &'static str {
        self.name
    }

    fn plan(&self) -> Result<Plan, Error> {
        super::check_conns(self.conns)?;
        if self.rooms == 0 || self.rooms > self.conns {
            return Err(Error::Option {
                name: "rooms",
                reason: format!("must be between 1 and --conns ({})", self.conns),
            });
        }
        if self.publishers > self.conns {
            return Err(Error::Option {
                name: "publishers",
                reason: format!("at most --conns ({})", self.conns),
            });
        }
        if self.publishers > 0 && (self.rate.is_nan() || self.rate <= 0.0) {
            return Err(Error::Option {
                name: "rate",
                reason: "must be positive".into(),
            });
        }
        let rooms: Vec<String> = (0..self.rooms)
            .map(|r| format!("{}-{r}", self.room_prefix))
            .collect();
        let mut room_publishers = vec![Vec::new(); self.rooms];
        let conns = (0..self.conns)
            .map(|i| {
                let room = i % self.rooms;
                let publisher = (i < self.publishers).then(|| {
                    let room_pub = room_publishers[room].len() as u32;
                    room_publishers[room].push(i as u32);
                    (i as u32, room_pub)
                });
                ConnPlan {
                    room: Some(room),
                    publisher,
                }
            })
            .collect();
        let plan = Plan {
            rooms,
            room_publishers,
            conns,
            rate: self.rate,
        };
        plan.assert_consistent();
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_members_and_publishers() {
        let plan = Fanout {
            name: "fanout",
            conns: 1000,
            rooms: 10,
            publishers: 100,
            rate: 10.0,
            room_prefix: "lg".into(),
        }
        .plan()
        .unwrap();
        assert_eq!(plan.rooms.len(), 10);
        assert_eq!(plan.publishers(), 100);
        assert!(plan.room_publishers.iter().all(|p| p.len() == 10));
        let per_room = plan.conns.iter().filter(|c| c.room == Some(3)).count();
        assert_eq!(per_room, 100);
    }

    #[test]
    fn rejects_impossible_shapes() {
        let f = |conns, rooms, publishers| Fanout {
            name: "fanout",
            conns,
            rooms,
            publishers,
            rate: 1.0,
            room_prefix: "x".into(),
        };
        assert!(f(10, 0, 1).plan().is_err());
        assert!(f(10, 11, 1).plan().is_err());
        assert!(f(10, 1, 11).plan().is_err());
        let none = f(0, 1, 0).plan().unwrap_err().to_string();
        assert!(none.contains("conns"), "{none}");
    }
}
