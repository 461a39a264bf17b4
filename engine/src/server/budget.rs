//! Request budgets: every client message is charged a cost (its feature rates it by type and
//! size) to three token buckets, the connection's, its user's (all their devices on this shard)
//! and its source address's (all its connections on this shard), and refused with
//! `rate_limited` when any is spent.
//!
//! Invariants: a message is charged to all three budgets or to none; `addresses` holds an
//! entry exactly for the addresses with connections on this shard, so it is bounded by them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use super::shard::Shard;
use crate::identity::{RateLimit, TokenBucket};
use crate::protocol::message::AppError;

/// The budget of one source address on a shard.
#[derive(Debug)]
pub struct AddressBudget {
    pub bucket: TokenBucket,
    /// This shard's connections from the address.
    pub conns: u32,
}

/// Takes `cost` from the bucket in `slot`, made full on first use: Ok(true). Err: the time to
/// wait, in ms.
fn take(
    slot: &mut Option<TokenBucket>,
    limit: &RateLimit,
    cost: u32,
    now: Instant,
) -> Result<bool, u64> {
    slot.get_or_insert_with(|| TokenBucket::new(limit, now))
        .take_n(limit, now, cost)
        .map(|()| true)
        .map_err(|wait| wait.as_millis() as u64 + 1)
}

impl Shard {
    /// Charges `cost` to connection `key`'s budgets: its own, its user's, its address's; to
    /// all three or (refused) to none: a later budget's refusal gives back what the earlier
    /// ones took.
    pub fn charge(&mut self, key: usize, cost: u32, now: Instant) -> Result<(), AppError> {
        let limits = self.budgets;
        let conn = &mut self.conns[key];
        let user_id = conn.authenticated_user().map(|u| Arc::from(&*u.id));
        let ip = conn.ip;
        let took_conn = match &limits.connection {
            Some(limit) => take(&mut conn.request_bucket, limit, cost, now)
                .map_err(|retry| self.refused("connection", retry))?,
            None => false,
        };
        let user = limits.user.as_ref().zip(user_id.as_ref());
        let took_user = match user {
            Some((limit, id)) => {
                let local = self.local_users.get_mut(id).expect("a user's connection");
                take(&mut local.bucket, limit, cost, now)
            }
            None => Ok(false),
        };
        let took_user = match took_user {
            Ok(took) => took,
            Err(retry) => {
                self.give_back(key, None, took_conn, false, cost);
                return Err(self.refused("user", retry));
            }
        };
        if let (Some(limit), Some(ip)) = (&limits.address, ip) {
            let budget = self.addresses.get_mut(&ip).expect("a connection's address");
            if let Err(wait) = budget.bucket.take_n(limit, now, cost) {
                self.give_back(key, user_id.as_deref(), took_conn, took_user, cost);
                return Err(self.refused("address", wait.as_millis() as u64 + 1));
            }
        }
        Ok(())
    }

    /// Charges `cost` for work already done for connection `key` (a feature's heavy request)
    /// to its three budgets, into debt if need be: its next requests are refused until paid.
    pub fn debit(&mut self, key: usize, cost: u32, now: Instant) {
        let limits = self.budgets;
        let conn = &mut self.conns[key];
        let user_id = conn.authenticated_user().map(|u| Arc::from(&*u.id));
        let ip = conn.ip;
        if let Some(limit) = &limits.connection {
            conn.request_bucket
                .get_or_insert_with(|| TokenBucket::new(limit, now))
                .debit(limit, now, cost);
        }
        if let (Some(limit), Some(id)) = (&limits.user, user_id) {
            let local = self.local_users.get_mut(&id).expect("a user's connection");
            local
                .bucket
                .get_or_insert_with(|| TokenBucket::new(limit, now))
                .debit(limit, now, cost);
        }
        if let (Some(limit), Some(ip)) = (&limits.address, ip) {
            let budget = self.addresses.get_mut(&ip).expect("a connection's address");
            budget.bucket.debit(limit, now, cost);
        }
        self.stats
            .budget_debited
            .fetch_add(u64::from(cost), RELAXED);
    }

    fn refused(&self, budget: &'static str, retry_ms: u64) -> AppError {
        self.stats.rate_limited.fetch_add(1, RELAXED);
        AppError::Throttled { budget, retry_ms }
    }

    /// Returns `cost` to the connection's and the user's buckets where they took it.
    fn give_back(
        &mut self,
        key: usize,
        user: Option<&str>,
        conn: bool,
        took_user: bool,
        cost: u32,
    ) {
        let limits = self.budgets;
        if let (true, Some(limit)) = (conn, &limits.connection) {
            if let Some(bucket) = self.conns[key].request_bucket.as_mut() {
                bucket.give_back(limit, cost);
            }
        }
        if let (true, Some(limit), Some(user)) = (took_user, &limits.user, user) {
            if let Some(bucket) = self
                .local_users
                .get_mut(user)
                .and_then(|l| l.bucket.as_mut())
            {
                bucket.give_back(limit, cost);
            }
        }
    }

    /// Counts a new connection from `ip` in its address's budget.
    pub(super) fn address_joined(&mut self, ip: IpAddr, now: Instant) {
        let limit = self.budgets.address.unwrap_or(RateLimit::GAME);
        self.addresses
            .entry(ip)
            .or_insert_with(|| AddressBudget {
                bucket: TokenBucket::new(&limit, now),
                conns: 0,
            })
            .conns += 1;
    }

    /// Forgets a connection from `ip`; the address's entry goes with its last connection.
    pub(super) fn address_left(&mut self, ip: IpAddr) {
        if let Some(budget) = self.addresses.get_mut(&ip) {
            budget.conns -= 1;
            if budget.conns == 0 {
                self.addresses.remove(&ip);
            }
        }
    }
}

/// The three request budgets of a shard (None: that one is off).
#[derive(Debug, Clone, Copy)]
pub struct Budgets {
    pub connection: Option<RateLimit>,
    pub user: Option<RateLimit>,
    pub address: Option<RateLimit>,
}

/// The addresses with connections on a shard, and their budgets.
pub type Addresses = HashMap<IpAddr, AddressBudget>;

const RELAXED: std::sync::atomic::Ordering = std::sync::atomic::Ordering::Relaxed;
