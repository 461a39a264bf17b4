//! The context a feature handler gets: everything a feature may do with the shard core, and
//! the time of the event it handles.
//!
//! Invariant: a feature reaches the core only through a `Ctx`; the time is read once per event
//! by the core's entry point, so every handler of one event sees the same `now`, and a test
//! harness can set it.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::connection::{Conn, Phase};
use super::gather::GatherRef;
use super::local::Local;
use super::shard::Shard;
use super::shard_msg::Delivery;
use super::shard_msg::{ConnRef, ShardMsg};
use super::timer::TimersFull;
use super::topic::{Topic, TopicOwner};
use crate::config::Config;
use crate::features::{ConnState, FeatureId, FeatureMsg, OwnedMsg};
use crate::identity::{TokenBucket, User, Verdict};
use crate::protocol::event;
use crate::protocol::message::AppError;
use crate::stats::ShardStats;

/// The time of an event: monotonic for durations, wall-clock for timestamps.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub mono: Instant,
    pub unix_ms: u64,
}

impl Now {
    /// Reads both clocks. Only the core's entry points call this, once per event.
    pub fn read() -> Self {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Self {
            mono: Instant::now(),
            unix_ms,
        }
    }
}

pub struct Ctx<'a> {
    core: &'a mut Shard,
    now: Now,
}

impl<'a> Ctx<'a> {
    pub(super) fn new(core: &'a mut Shard, now: Now) -> Self {
        Self { core, now }
    }

    pub(super) fn core(&mut self) -> &mut Shard {
        self.core
    }

    // ----- the shard ----------------------------------------------------------------------

    pub fn now(&self) -> Now {
        self.now
    }

    /// This shard's number.
    pub fn shard(&self) -> usize {
        self.core.id
    }

    pub fn shards(&self) -> usize {
        self.core.shards
    }

    pub fn config(&self) -> &Config {
        &self.core.config
    }

    pub fn stats(&self) -> &ShardStats {
        &self.core.stats
    }

    // ----- connections --------------------------------------------------------------------

    pub fn conn_ref(&self, key: usize) -> ConnRef {
        self.core.conn_ref(key)
    }

    /// Connection `key` on this shard still is connection `conn` and open.
    pub fn is_open(&self, conn: ConnRef) -> bool {
        self.core
            .conns
            .get(conn.key)
            .is_some_and(|c| c.id == conn.id && c.phase == Phase::Open)
    }

    /// The features' state for connection `key`.
    pub fn state(&mut self, key: usize) -> &mut ConnState {
        &mut self.core.conns[key].features
    }

    /// The logged-in user of connection `key`, if any.
    pub fn user(&self, key: usize) -> Option<&Arc<User>> {
        self.core.conns[key].authenticated_user()
    }

    /// The logged-in user of connection `key`; guests get `auth_required`.
    pub fn user_of(&self, key: usize) -> Result<Arc<User>, AppError> {
        self.user(key).cloned().ok_or(AppError::AuthRequired)
    }

    /// The name connection `key` speaks under: its user, or a guest identity made once.
    pub fn speaker(&mut self, key: usize) -> Arc<User> {
        self.core.conns[key].speaker()
    }

    /// Makes connection `key` speak for `user` from now on.
    pub fn identify(&mut self, key: usize, user: Arc<User>) {
        self.core.identify(key, user);
    }

    /// This shard's connections of user `user_id`.
    pub fn local_devices(&self, user_id: &str) -> &[usize] {
        self.core
            .local_users
            .get(user_id)
            .map_or(&[], |l| l.conns.as_slice())
    }

    /// Open connections here, by key.
    pub fn conn_keys(&self) -> impl Iterator<Item = (usize, &Conn)> {
        self.core
            .conns
            .iter()
            .filter(|(_, c)| c.phase == Phase::Open)
    }

    // ----- answers --------------------------------------------------------------------------

    /// Queues `frame` to connection `key` (here).
    pub fn reply(&mut self, key: usize, frame: Bytes) {
        self.core.enqueue(key, frame);
    }

    /// Answers connection `key` (here) with an `error`; counted in `app_errors`.
    pub fn refuse(&mut self, key: usize, err: &AppError, reference: Option<&[u8]>) {
        self.core.app_error(key, err, reference);
    }

    /// Answers `ack {ref}` when the client sent a `ref`.
    pub fn ack(&mut self, key: usize, reference: Option<&[u8]>) {
        if let Some(r) = reference {
            self.core.enqueue(key, event::ack(r));
        }
    }

    /// Queues `frame` to connection `conn`, here or on its shard, if it is still open.
    pub fn to_conn(&mut self, conn: ConnRef, frame: Bytes) {
        self.core.deliver_to_conn(conn, frame);
    }

    /// Answers connection `conn` (anywhere) with an `error`.
    pub fn refuse_conn(&mut self, conn: ConnRef, err: &AppError, reference: Option<&[u8]>) {
        let frame = self.core.error_frame(err, reference);
        self.core.deliver_to_conn(conn, frame);
    }

    // ----- budgets --------------------------------------------------------------------------

    /// Charges `cost` to connection `key`'s request budgets (see `budget`).
    pub fn charge(&mut self, key: usize, cost: u32) -> Result<(), AppError> {
        self.core.charge(key, cost, self.now.mono)
    }

    /// Charges connection `conn` (anywhere) `units` for work already done for it, into debt
    /// if need be: its next requests are refused until it is paid back.
    pub fn debit(&mut self, conn: ConnRef, units: u32) {
        self.core.debit_conn(conn, units, self.now.mono);
    }

    /// The content of a message a client sends, encoded, within `--max-content-bytes` and the
    /// connection's `--rate-limit` (a warning is queued when 80% of the bucket is used).
    pub fn checked_content(
        &mut self,
        key: usize,
        content: &simd_json::BorrowedValue<'_>,
    ) -> Result<Vec<u8>, AppError> {
        use simd_json::prelude::*;
        let content = content.encode().into_bytes();
        let max = self.core.config.max_content_bytes;
        if content.len() > max {
            return Err(AppError::ContentTooLarge {
                size: content.len(),
                max,
            });
        }
        let Some(limit) = self.core.rate_limit else {
            return Ok(content);
        };
        let now = self.now.mono;
        let bucket = self.core.conns[key]
            .content_bucket
            .get_or_insert_with(|| TokenBucket::new(&limit, now));
        match bucket.take(&limit, now) {
            Verdict::Allowed => {}
            Verdict::Warn { remaining, full_in } => {
                let reset = self.now.unix_ms + full_in.as_millis() as u64;
                self.core
                    .enqueue(key, event::rate_limit_warning(remaining, reset));
            }
            Verdict::Limited { retry_in } => {
                self.core.stats.rate_limited.fetch_add(1, RELAXED);
                return Err(AppError::RateLimited {
                    limit: limit.messages,
                    window_ms: limit.window.as_millis() as u64,
                    retry_ms: retry_in.as_millis() as u64 + 1,
                });
            }
        }
        Ok(content)
    }

    // ----- routing --------------------------------------------------------------------------

    /// Sends `msg` to the owner of the key it names (through the local queue when that is
    /// this shard).
    pub fn to_owner(&mut self, msg: impl Into<OwnedMsg>) {
        self.core.route_owned(msg.into());
    }

    /// Sends `msg` to shard `to`'s features.
    pub fn to_shard(&mut self, to: usize, msg: impl Into<FeatureMsg>) {
        self.core.route(to, ShardMsg::Feature(msg.into()));
    }

    /// Sends `frame` to every connection of user `user_id` on shard `to`.
    /// On this shard the frames are queued at once, like [`Ctx::to_conn`]'s, so a connection
    /// gets one order of frames whatever shard it is on.
    pub fn to_devices_on(&mut self, to: usize, user_id: Arc<str>, frame: Bytes) {
        if to == self.core.id {
            return self.core.deliver_to_local_user(&user_id, &frame);
        }
        self.core.send_to(to, ShardMsg::ToUser { user_id, frame });
    }

    // ----- topics: the member's side --------------------------------------------------------

    pub fn is_member(&self, key: usize, topic: &str) -> bool {
        self.core.is_member(key, topic)
    }

    /// The shared name of `topic` (one `Arc` per topic on a shard).
    pub fn topic_name(&self, key: usize, topic: &str) -> Arc<str> {
        self.core.topic_name(key, topic)
    }

    /// Asks the owner to let connection `key` join `topic`; `msg` is the feature's request
    /// to the owner, which answers with [`Ctx::answer_join`].
    pub fn request_join(&mut self, key: usize, topic: Arc<str>, msg: impl Into<OwnedMsg>) {
        self.core.request_join(key, topic, msg.into());
    }

    /// Leaves `topic` (joined, or still joining); false when connection `key` is in neither.
    pub fn leave_topic(&mut self, key: usize, topic: &str) -> bool {
        self.core.leave_topic(key, topic)
    }

    /// Topics joined and joining.
    pub fn topic_count(&self, key: usize) -> usize {
        self.core.conns[key].in_topic_count()
    }

    /// This shard's members of `topic`, if it knows the topic.
    pub fn local_members(&self, topic: &str) -> impl Iterator<Item = usize> + '_ {
        self.core
            .topics
            .key(topic)
            .and_then(|tk| self.core.topics.get(tk))
            .into_iter()
            .flat_map(|t| t.members.iter().map(|(_, &k)| k))
    }

    // ----- topics: the owner's side ---------------------------------------------------------

    /// The owned topic `name` of `feature` (made when missing): its key and serial.
    pub fn own_topic(&mut self, name: &str, feature: FeatureId) -> Result<(usize, u64), AppError> {
        self.core.own_topic(name, feature, self.now)
    }

    pub fn topic_key(&self, name: &str) -> Option<usize> {
        self.core.topics.key(name)
    }

    pub fn topic(&self, tk: usize) -> &Topic {
        self.core.topics.get(tk).expect("a live topic")
    }

    pub fn topic_owner(&self, tk: usize) -> &TopicOwner {
        self.core.topic_owner(tk)
    }

    /// The owned topic `name` if connection `conn_id` is a member.
    pub fn member_of_owned(&self, name: &str, conn_id: u64) -> Option<usize> {
        self.core.member_of_owned(name, conn_id)
    }

    /// Counts an accepted join of `conn` in owned topic `tk`; true when it is new (every
    /// feature then hears of it, after this handler: `on_member_joined`).
    pub fn add_member(&mut self, tk: usize, conn: ConnRef) -> bool {
        let me = self.core.id;
        let new = self.core.topic_owner_mut(tk).add_member(conn.id, me);
        if new {
            let topic = self.core.topics.get(tk).expect("a live topic").name.clone();
            self.core.local.push_back(Local::MemberJoined(topic, conn));
        }
        new
    }

    /// Keeps owned topic `tk` while it is empty (until its TTL), or stops keeping it.
    pub fn keep_topic(&mut self, tk: usize, keep: bool) {
        self.core.topic_owner_mut(tk).keep = keep;
    }

    /// Answers a join request of `conn` to owned `topic`.
    pub fn answer_join(
        &mut self,
        topic: Arc<str>,
        feature: FeatureId,
        conn: ConnRef,
        result: Result<Bytes, Bytes>,
        reference: Option<Vec<u8>>,
    ) {
        self.core
            .answer_join(topic, feature, conn, result, reference);
    }

    /// Publishes into owned topic `tk` with the next id (history, batching, fan-out); returns
    /// the id. `encode` gets the topic's name and the id.
    pub fn publish(&mut self, tk: usize, encode: impl FnOnce(&str, u64) -> Bytes) -> u64 {
        self.core.publish(tk, self.now, encode)
    }

    /// Sends `frame` to every member of owned topic `tk`, without an id or history.
    pub fn fanout(&mut self, tk: usize, frame: Bytes) {
        self.core.fanout(tk, frame, Delivery::All);
    }

    /// Sends `frame` to every member of owned topic `tk` but connection `except`.
    pub fn fanout_except(&mut self, tk: usize, frame: Bytes, except: u64) {
        self.core.fanout(tk, frame, Delivery::Except(except));
    }

    /// Sends `frame` to every member of owned topic `tk`, latest-wins in `slot`: in a queue
    /// still holding an unsent frame of that slot, it takes that frame's place.
    pub fn fanout_latest(&mut self, tk: usize, frame: Bytes, slot: u64) {
        self.core.fanout(tk, frame, Delivery::Latest(slot));
    }

    // ----- scatter-gather and timers --------------------------------------------------------

    /// Sends `make(gather)` to every shard's features for connection `key`.
    pub fn scatter(
        &mut self,
        key: usize,
        feature: FeatureId,
        what: &'static str,
        reference: Option<&[u8]>,
        make: impl Fn(GatherRef) -> FeatureMsg,
    ) -> Result<(), AppError> {
        self.core.scatter(key, feature, what, reference, make)
    }

    /// This shard's part of a gather.
    pub fn gather_part(&mut self, gather: GatherRef, entries: Vec<Vec<u8>>, truncated: bool) {
        self.core.gather_part(gather, entries, truncated);
    }

    /// Delivers `msg` to this shard's features at `at`.
    pub fn set_timer(&mut self, at: Instant, msg: impl Into<FeatureMsg>) -> Result<(), TimersFull> {
        self.core.set_timer(at, msg.into())
    }
}

const RELAXED: std::sync::atomic::Ordering = std::sync::atomic::Ordering::Relaxed;
