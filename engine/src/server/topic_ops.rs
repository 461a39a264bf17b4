//! Topics on a shard: the join/leave protocol between a member's shard and the owner, the
//! owner's stream (ids, history, batching) and the encode-once fan-out to every member.
//!
//! Invariants:
//! - The owner's feature decides every join and the owner answers it once; a leave reaches the
//!   owner only for a join it accepted, so member counts never drift.
//! - A member sees every message published after its join was accepted, exactly once, in the
//!   owner's order: either in the join's answer (the feature's recent messages) or live.

use std::sync::Arc;

use bytes::Bytes;

use super::connection::Phase;
use super::context::Now;
use super::gather::{Gather, GatherRef, Gathered, GATHERS_PER_SHARD_MAX};
use super::local::{Dropped, Local};
use super::shard::Shard;
use super::shard_msg::Delivery;
use super::shard_msg::{shard_of, ConnRef, Joined, ShardMsg};
use super::topic::TopicOwner;
use crate::features::{FeatureId, FeatureMsg, Features, OwnedMsg};
use crate::limits::TOPICS_PER_SHARD_MAX;
use crate::protocol::event;
use crate::protocol::message::AppError;
use crate::stream::{Batcher, Deadline, History};

impl Shard {
    // ----- the member's side --------------------------------------------------------------

    /// Joined, or joining (the owner has not answered yet).
    pub fn is_member(&self, key: usize, topic: &str) -> bool {
        let conn = &self.conns[key];
        conn.pending_joins.iter().any(|r| &**r == topic)
            || self
                .topics
                .key(topic)
                .is_some_and(|tk| conn.topics.iter().any(|&(k, _)| k == tk))
    }

    /// The shared name of `topic` when this shard knows it, else a new one.
    pub fn topic_name(&self, key: usize, topic: &str) -> Arc<str> {
        if let Some(tk) = self.topics.key(topic) {
            return self.topics.get(tk).expect("indexed").name.clone();
        }
        self.conns[key]
            .pending_joins
            .iter()
            .find(|r| &***r == topic)
            .cloned()
            .unwrap_or_else(|| Arc::from(topic))
    }

    /// Asks the owner of `topic` to let connection `key` join, with the feature's request
    /// `msg` (which names the topic as its key); the owner answers with `Joined`.
    pub fn request_join(&mut self, key: usize, topic: Arc<str>, msg: OwnedMsg) {
        debug_assert_eq!(msg.owner_key(), &*topic, "a join goes to the topic's owner");
        self.conns[key].pending_joins.push(topic);
        self.route_owned(msg);
    }

    /// The owner's answer to a join of connection `conn` on this shard.
    pub(super) fn on_joined(&mut self, joined: Joined) {
        let Joined {
            topic,
            feature,
            conn,
            result,
            reference,
        } = joined;
        let waiting = self
            .conns
            .get_mut(conn.key)
            .filter(|c| c.id == conn.id && c.phase == Phase::Open)
            .and_then(|c| {
                let pos = c.pending_joins.iter().position(|r| *r == topic)?;
                c.pending_joins.swap_remove(pos);
                Some(())
            });
        if waiting.is_none() {
            // Closed or left before the answer: undo an accepted join.
            if result.is_ok() {
                self.route_to_owner_of(
                    &topic,
                    ShardMsg::Leave {
                        topic: topic.clone(),
                        conn_id: conn.id,
                    },
                );
            }
            return;
        }
        let frame = match result {
            Ok(frame) => frame,
            Err(frame) => return self.enqueue(conn.key, frame),
        };
        let tk = self.topics.get_or_insert_with(&topic, feature, || None);
        self.count_topics();
        let slot = self
            .topics
            .get_mut(tk)
            .expect("just made")
            .members
            .insert(conn.key);
        self.conns[conn.key].topics.push((tk, slot));
        self.enqueue(conn.key, frame);
        if let Some(r) = reference {
            self.enqueue(conn.key, event::ack(&r));
        }
    }

    fn route_to_owner_of(&mut self, topic: &str, msg: ShardMsg) {
        let to = crate::runtime::owner_shard(topic, self.shards);
        self.route(to, msg);
    }

    /// Takes connection `key` out of `topic` (joined or still joining). False when it is in
    /// neither.
    pub fn leave_topic(&mut self, key: usize, topic: &str) -> bool {
        let pending = self.conns[key]
            .pending_joins
            .iter()
            .position(|r| &**r == topic);
        if let Some(pos) = pending {
            // The owner's answer finds no pending join and undoes it if it was accepted.
            self.conns[key].pending_joins.swap_remove(pos);
            return true;
        }
        let joined = self
            .topics
            .key(topic)
            .filter(|tk| self.conns[key].topics.iter().any(|&(k, _)| k == *tk));
        match joined {
            Some(tk) => {
                self.remove_member(key, tk);
                true
            }
            None => false,
        }
    }

    fn remove_member(&mut self, key: usize, tk: usize) -> Arc<str> {
        let conn = &mut self.conns[key];
        let conn_id = conn.id;
        let pos = conn
            .topics
            .iter()
            .position(|&(k, _)| k == tk)
            .expect("member of the topic");
        let (_, slot) = conn.topics.swap_remove(pos);
        let topic = self.topics.get_mut(tk).expect("topic exists");
        topic.members.remove(slot);
        let name = topic.name.clone();
        self.drop_if_disposable(tk);
        self.route_to_owner_of(
            &name.clone(),
            ShardMsg::Leave {
                topic: name.clone(),
                conn_id,
            },
        );
        name
    }

    /// Leaves every joined and pending topic (close); returns the joined ones.
    pub(super) fn leave_all(&mut self, key: usize) -> Vec<Arc<str>> {
        let mut left = Vec::new();
        while let Some(&(tk, _)) = self.conns[key].topics.last() {
            left.push(self.remove_member(key, tk));
        }
        // Pending joins: their answers find nothing waiting and undo accepted joins.
        self.conns[key].pending_joins.clear();
        left
    }

    // ----- the owner's side ---------------------------------------------------------------

    pub(super) fn count_topics(&self) {
        self.stats.rooms.store(self.topics.len() as u64, RELAXED);
    }

    /// Drops topic `tk` if nothing refers to it any more; an owned one is announced to its
    /// feature.
    pub(super) fn drop_if_disposable(&mut self, tk: usize) {
        if let Some(topic) = self.topics.remove_if_disposable(tk) {
            self.topic_dropped(topic);
        }
        self.count_topics();
    }

    pub(super) fn topic_dropped(&mut self, topic: super::topic::Topic) {
        if topic.owner.is_some() {
            self.local.push_back(Local::TopicDropped(Dropped {
                feature: topic.feature,
                name: topic.name,
                serial: topic.serial,
            }));
        }
    }

    /// The owned topic `name` of `feature`, made with the configured stream when it does not
    /// exist. Returns its key and serial.
    pub fn own_topic(
        &mut self,
        name: &str,
        feature: FeatureId,
        now: Now,
    ) -> Result<(usize, u64), AppError> {
        if let Some(tk) = self.topics.key(name) {
            let topic = self.topics.get(tk).expect("indexed");
            assert_eq!(
                topic.feature, feature,
                "features name topics in their own namespace"
            );
            return Ok((tk, topic.serial));
        }
        if self.topics.len() >= TOPICS_PER_SHARD_MAX && !self.evict_empty_topic(now.mono) {
            return Err(AppError::TopicLimit {
                max: TOPICS_PER_SHARD_MAX,
            });
        }
        let c = &self.config;
        let owner = TopicOwner::new(
            self.shards,
            Batcher::new(c.batch_window(), c.batch_max),
            History::new(1, c.history_messages, c.history_bytes_per_room),
        );
        let tk = self
            .topics
            .get_or_insert_with(name, feature, || Some(owner));
        self.note_if_empty(tk, now.mono);
        self.count_topics();
        Ok((tk, self.topics.get(tk).expect("made").serial))
    }

    pub fn topic_owner(&self, tk: usize) -> &TopicOwner {
        self.topics
            .get(tk)
            .and_then(|t| t.owner.as_ref())
            .expect("an owned topic")
    }

    pub fn topic_owner_mut(&mut self, tk: usize) -> &mut TopicOwner {
        self.topics
            .get_mut(tk)
            .and_then(|t| t.owner.as_mut())
            .expect("an owned topic")
    }

    /// The owned topic `name` if connection `conn_id` is a member.
    pub fn member_of_owned(&self, name: &str, conn_id: u64) -> Option<usize> {
        let tk = self.topics.key(name)?;
        let o = self.topics.get(tk)?.owner.as_ref()?;
        o.members.contains_key(&conn_id).then_some(tk)
    }

    /// Answers a join: `Ok(frame)` after [`TopicOwner::add_member`] counted it, `Err(frame)`
    /// (an `error`) when the feature refused it.
    pub fn answer_join(
        &mut self,
        topic: Arc<str>,
        feature: FeatureId,
        conn: ConnRef,
        result: Result<Bytes, Bytes>,
        reference: Option<Vec<u8>>,
    ) {
        let joined = Joined {
            topic,
            feature,
            conn,
            result,
            reference,
        };
        let shard = shard_of(conn.id);
        if shard == self.id {
            // Core only, no feature code: the joiner is a member before anything queued
            // behind this answer (a leave the join's own fan-out caused) reaches the topic.
            return self.on_joined(joined);
        }
        self.send_to(shard, ShardMsg::Joined(Box::new(joined)));
    }

    /// A member of owned topic `topic` left: counted, told to the feature, and the topic
    /// forgotten when nothing refers to it any more.
    pub(super) fn owner_leave(
        &mut self,
        features: &mut Features,
        topic: &Arc<str>,
        conn_id: u64,
        now: Now,
    ) {
        let tk = self
            .topics
            .key(topic)
            .unwrap_or_else(|| panic!("leave for unknown topic {topic}"));
        let me = self.id;
        let feature = self.topics.get(tk).expect("indexed").feature;
        let gone = self.topic_owner_mut(tk).remove_member(conn_id, me);
        let mut ctx = super::context::Ctx::new(self, now);
        features.on_member_left(&mut ctx, feature, tk, conn_id, gone);
        if self.topics.get(tk).is_some() {
            self.drop_if_disposable(tk);
        }
        self.note_if_empty(tk, now.mono);
    }

    /// Assigns the next id to a message of owned topic `tk`, encoded by `encode(name, id)`,
    /// keeps it in the history, and sends it now or with its batch. Returns the id.
    pub fn publish(&mut self, tk: usize, now: Now, encode: impl FnOnce(&str, u64) -> Bytes) -> u64 {
        let topic = self.topics.get_mut(tk).expect("a live topic");
        let owner = topic.owner.as_mut().expect("an owned topic");
        let id = owner.next_id;
        owner.next_id += 1;
        let message = encode(&topic.name, id);
        let step = owner.batcher.push(now.mono, message.clone());
        let trimmed = self.topics.keep_history(tk, id, message);
        self.stats.history_trimmed.fetch_add(trimmed, RELAXED);
        self.stats
            .history_bytes
            .store(self.topics.history_bytes() as u64, RELAXED);
        self.stats.published.fetch_add(1, RELAXED);
        self.apply_batch_step(tk, step);
        id
    }

    fn apply_batch_step(&mut self, tk: usize, (out, deadline): crate::stream::Step) {
        if let Some(Deadline { at, epoch }) = deadline {
            self.batch_due.push_back((at, tk, epoch));
            self.wake_timer_task(at);
        }
        if let Some(messages) = out {
            self.fanout(tk, event::batch(&messages), Delivery::All);
        }
    }

    /// A batch window of topic `tk` ended.
    pub fn on_batch_deadline(&mut self, tk: usize, epoch: u64, now: Now) {
        let Some(owner) = self.topics.get_mut(tk).and_then(|t| t.owner.as_mut()) else {
            return;
        };
        let step = owner.batcher.on_deadline(now.mono, epoch);
        self.apply_batch_step(tk, step);
        self.drop_if_disposable(tk);
    }

    /// Closes the batch windows and fires the timers due by `now`, then settles.
    pub fn fire_due(&mut self, now: Now) {
        while let Some(&(at, tk, epoch)) = self.batch_due.front() {
            if at > now.mono {
                break;
            }
            self.batch_due.pop_front();
            self.on_batch_deadline(tk, epoch, now);
        }
        while let Some(msg) = self.timers.pop_due(now.mono) {
            self.local.push_back(Local::Timer(msg));
        }
        self.settle(now);
    }

    /// When the timer task should next come back: the earliest batch window or timer.
    pub fn next_due(&self) -> Option<std::time::Instant> {
        let batch = self.batch_due.front().map(|&(at, _, _)| at);
        match (batch, self.timers.next_due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Sets a feature timer; wakes the timer task if it is now the earliest.
    pub fn set_timer(
        &mut self,
        at: std::time::Instant,
        msg: FeatureMsg,
    ) -> Result<(), super::timer::TimersFull> {
        self.timers.set(at, msg)?;
        self.wake_timer_task(at);
        Ok(())
    }

    /// Something is due at `at`: wake the timer task if it waits with nothing due, or sleeps
    /// toward a later time.
    fn wake_timer_task(&mut self, at: std::time::Instant) {
        if let Some(w) = self.timer_waker.take() {
            w.wake();
        }
        if self.timer_sleep_until.is_some_and(|until| at < until) {
            if let Some(w) = self.timer_earlier_waker.take() {
                w.wake();
            }
        }
    }

    /// Queues `frame` to the members of owned topic `tk` as `how` says: local ones directly,
    /// other shards' through their inboxes (one message per shard, whatever its member
    /// count).
    pub fn fanout(&mut self, tk: usize, frame: Bytes, how: Delivery) {
        let topic = self.topics.get(tk).expect("topic exists");
        let name = topic.name.clone();
        for shard in 0..self.shards {
            let owner = self.topic_owner(tk);
            if owner.remote[shard] > 0 {
                let (topic, frame) = (name.clone(), frame.clone());
                let msg = if how == Delivery::All {
                    ShardMsg::Deliver { topic, frame }
                } else {
                    ShardMsg::DeliverSome(Box::new((topic, frame, how)))
                };
                self.send_to(shard, msg);
            }
        }
        self.enqueue_to_members(tk, &frame, how);
    }

    /// Queues `frame` to this shard's members of topic `tk`. The frame is copied once into
    /// the topic's chunk, and each member's queue takes (or extends) a range of it: no
    /// reference count and no entry per member per message. Members whose queue is full are
    /// cut off after the loop, since the cut changes the topic.
    pub(super) fn enqueue_to_members(&mut self, tk: usize, frame: &Bytes, how: Delivery) {
        let Some(topic) = self.topics.get(tk) else {
            return;
        };
        if topic.members.is_empty() {
            return;
        }
        let except = match how {
            Delivery::Except(id) => id,
            _ => u64::MAX,
        };
        let latest = match how {
            Delivery::Latest(slot) => Some(slot),
            _ => None,
        };
        // Latest-wins frames stay whole `Bytes`, so each queue can swap its own.
        let placed = match latest {
            None => self.fanout_chunks.place(tk, frame),
            Some(_) => None,
        };
        let mut conflated = 0;
        let mut slow = std::mem::take(&mut self.member_scratch);
        slow.clear();
        let mut queued = 0;
        for (_, &key) in topic.members.iter() {
            let conn = &mut self.conns[key];
            if conn.phase != Phase::Open || conn.id == except {
                continue;
            }
            let pushed = match (&placed, latest) {
                (Some((chunk, start, end)), _) => conn.queue.push_chunk(chunk, *start, *end),
                (None, Some(slot)) => conn.queue.push_latest(slot, frame.clone()).map(|replaced| {
                    conflated += replaced as u64;
                }),
                (None, None) => conn.queue.push(frame.clone()),
            };
            if pushed.is_err() {
                slow.push(key);
                continue;
            }
            queued += 1;
            conn.list_dirty(key, &mut self.dirty);
        }
        self.stats.frames_out.fetch_add(queued, RELAXED);
        self.stats.latest_conflated.fetch_add(conflated, RELAXED);
        if queued > 0 {
            self.wake_flusher();
        }
        for &key in &slow {
            if self.conns.get(key).is_some_and(|c| c.phase == Phase::Open) {
                tracing::debug!(conn = self.conns[key].id, "slow consumer cut off");
                self.cut_off_slow_consumer(key);
            }
        }
        self.member_scratch = slow;
    }

    // ----- scatter-gather -----------------------------------------------------------------

    /// Sends `make(gather)` to every shard's `feature` for connection `key`; their parts come
    /// back with [`Shard::gather_part`] and the whole goes to the feature's `on_gathered`.
    pub fn scatter(
        &mut self,
        key: usize,
        feature: FeatureId,
        what: &'static str,
        reference: Option<&[u8]>,
        make: impl Fn(GatherRef) -> FeatureMsg,
    ) -> Result<(), AppError> {
        if self.gathers.len() >= GATHERS_PER_SHARD_MAX {
            return Err(AppError::Busy {
                what,
                max: GATHERS_PER_SHARD_MAX,
            });
        }
        let id = self.gathers.insert(Gather {
            feature,
            conn: self.conn_ref(key),
            reference: reference.map(<[u8]>::to_vec),
            waiting: self.shards,
            entries: Vec::new(),
            truncated: false,
        });
        let gather = GatherRef { shard: self.id, id };
        for to in 0..self.shards {
            self.route(to, ShardMsg::Feature(make(gather)));
        }
        Ok(())
    }

    /// This shard's part of `gather`.
    pub fn gather_part(&mut self, gather: GatherRef, entries: Vec<Vec<u8>>, truncated: bool) {
        let part = ShardMsg::GatherPart {
            gather: gather.id,
            entries,
            truncated,
        };
        self.route(gather.shard, part);
    }

    pub(super) fn on_gather_part(
        &mut self,
        features: &mut Features,
        gather: usize,
        entries: Vec<Vec<u8>>,
        truncated: bool,
        now: Now,
    ) {
        let g = self.gathers.get_mut(gather).expect("a gather waits");
        g.entries.extend(entries);
        g.truncated |= truncated;
        g.waiting -= 1;
        if g.waiting > 0 {
            return;
        }
        let g = self.gathers.remove(gather);
        let whole = Gathered {
            conn: g.conn,
            reference: g.reference,
            entries: g.entries,
            truncated: g.truncated,
        };
        let mut ctx = super::context::Ctx::new(self, now);
        features.on_gathered(&mut ctx, g.feature, whole);
    }
}

const RELAXED: std::sync::atomic::Ordering = std::sync::atomic::Ordering::Relaxed;
