//! Hocuspocus's protocol over Yjs, for loadgen's Hocuspocus editors: every frame is the
//! document's name, a message type and its payload in lib0's encoding, and each editor keeps a
//! Yjs replica (`yrs`) that makes one update per keystroke and sends it at once, as
//! Hocuspocus's provider does.
//!
//! Invariant: Hocuspocus answers every update and sync step 2 a connection sends with one
//! `SyncStatus`, in order, so `sent` pairs each answer with what it answers.

use std::collections::VecDeque;
use std::hash::BuildHasher;

use foldhash::fast::FixedState;
use yrs::encoding::read::{Cursor, Read};
use yrs::encoding::write::Write;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{
    Doc, GetString, OffsetKind, Options, ReadTxn, StateVector, Text, TextRef, Transact, Update,
};

/// Message types (Hocuspocus's `MessageType`).
const SYNC: u32 = 0;
const AUTH: u32 = 2;
/// A sync message that does not ask for the sender's step 1 in return.
const SYNC_REPLY: u32 = 4;
const SYNC_STATUS: u32 = 8;
/// Sync steps (y-protocols' sync).
const STEP1: u32 = 0;
const STEP2: u32 = 1;
const UPDATE: u32 = 2;
/// Auth sub-types.
const AUTH_TOKEN: u32 = 0;
const AUTH_DENIED: u32 = 1;
const AUTH_OK: u32 = 2;

/// The shared text every editor edits.
const TEXT_NAME: &str = "content";

/// A frame from the server, as far as an editor cares.
#[derive(Debug, PartialEq)]
pub enum Frame {
    Authenticated,
    Denied(String),
    /// The server's state vector: it wants our updates past it.
    Step1(Vec<u8>),
    /// Updates we lack: the answer to our step 1.
    Step2(Vec<u8>),
    /// Another editor's update.
    Update(Vec<u8>),
    /// The answer to one of our updates or step 2s.
    Saved(bool),
    Other,
}

fn header(doc: &str, kind: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(doc.len() + 16);
    b.write_string(doc);
    b.write_var(kind);
    b
}

/// The first frame: a token (empty: the server runs no auth hook).
pub fn auth(doc: &str) -> Vec<u8> {
    let mut b = header(doc, AUTH);
    b.write_var(AUTH_TOKEN);
    b.write_string("");
    b
}

fn sync(doc: &str, step: u32, payload: &[u8]) -> Vec<u8> {
    let mut b = header(doc, SYNC);
    b.write_var(step);
    b.write_buf(payload);
    b
}

pub fn parse(frame: &[u8]) -> Result<Frame, String> {
    let e = |e: yrs::encoding::read::Error| format!("hocuspocus frame: {e}");
    let mut c = Cursor::new(frame);
    c.read_string().map_err(e)?;
    let kind: u32 = c.read_var().map_err(e)?;
    Ok(match kind {
        SYNC | SYNC_REPLY => {
            let step: u32 = c.read_var().map_err(e)?;
            let payload = c.read_buf().map_err(e)?.to_vec();
            match step {
                STEP1 => Frame::Step1(payload),
                STEP2 => Frame::Step2(payload),
                UPDATE => Frame::Update(payload),
                _ => Frame::Other,
            }
        }
        AUTH => match c.read_var::<u32>().map_err(e)? {
            AUTH_OK => Frame::Authenticated,
            AUTH_DENIED => Frame::Denied(c.read_string().unwrap_or("").to_string()),
            _ => Frame::Other,
        },
        SYNC_STATUS => Frame::Saved(c.read_var::<u32>().map_err(e)? == 1),
        _ => Frame::Other,
    })
}

/// An update's identity, the same on its author and on every editor it reaches: the clock its
/// author's insert starts at, or for a delete (which moves no clock) a hash of what it deletes.
fn identity(u: &Update) -> u64 {
    // The lower bound: the upper one (`state_vector`) counts only updates that start at 0.
    let sv = u.state_vector_lower();
    if let Some((client, clock)) = sv.iter().max() {
        return (client.get() << 32) | u64::from(*clock);
    }
    FixedState::with_seed(7).hash_one(u.delete_set()) | 1 << 63
}

/// A keystroke, at an offset in UTF-16 units.
#[derive(Debug, Clone, Copy)]
pub enum Key<'a> {
    Insert(u32, &'a str),
    Delete(u32),
}

/// One editor's Yjs replica and what it has sent.
pub struct Replica {
    pub doc: String,
    ydoc: Doc,
    text: TextRef,
    /// Seq and identity of what awaits its `SyncStatus`, oldest first (seq 0: a step 2).
    pub sent: VecDeque<(u64, u64)>,
}

impl Replica {
    /// A replica with Yjs client id `client` (distinct per editor, below 2^53 for JavaScript).
    /// Offsets are UTF-16 units, as in the browser.
    pub fn new(doc: &str, client: u64) -> Replica {
        let ydoc = Doc::with_options(Options {
            client_id: yrs::ClientID::new(client),
            offset_kind: OffsetKind::Utf16,
            ..Options::default()
        });
        let text = ydoc.get_or_insert_text(TEXT_NAME);
        Replica {
            doc: doc.into(),
            ydoc,
            text,
            sent: VecDeque::new(),
        }
    }

    /// Length of the text in UTF-16 units.
    pub fn len(&self) -> u32 {
        self.text.len(&self.ydoc.transact())
    }

    pub fn text(&self) -> String {
        self.text.get_string(&self.ydoc.transact())
    }

    /// Our step 1: the state vector the server answers with what we lack.
    pub fn step1(&self) -> Vec<u8> {
        sync(
            &self.doc,
            STEP1,
            &self.ydoc.transact().state_vector().encode_v1(),
        )
    }

    /// Our answer to the server's step 1: what it lacks. Its `SyncStatus` is awaited.
    pub fn step2(&mut self, server_sv: &[u8]) -> Result<Vec<u8>, String> {
        let sv = StateVector::decode_v1(server_sv).map_err(|e| e.to_string())?;
        let diff = self.ydoc.transact().encode_diff_v1(&sv);
        self.sent.push_back((0, 0));
        Ok(sync(&self.doc, STEP2, &diff))
    }

    /// One keystroke; returns the update frame and the update's identity.
    pub fn edit(&mut self, key: Key<'_>) -> (Vec<u8>, u64) {
        let update = {
            let mut txn = self.ydoc.transact_mut();
            match key {
                Key::Insert(at, s) => self.text.insert(&mut txn, at, s),
                Key::Delete(at) => self.text.remove_range(&mut txn, at, 1),
            }
            txn.encode_update_v1()
        };
        let id = Update::decode_v1(&update).map_or(0, |u| identity(&u));
        (sync(&self.doc, UPDATE, &update), id)
    }

    /// Applies an update from the server; returns its identity.
    pub fn apply(&mut self, update: &[u8]) -> Result<u64, String> {
        let u = Update::decode_v1(update).map_err(|e| e.to_string())?;
        let id = identity(&u);
        self.ydoc
            .transact_mut()
            .apply_update(u)
            .map_err(|e| e.to_string())?;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hocuspocus's relay in one line: the update inside an update frame, as it broadcasts it.
    fn relayed(frame: &[u8]) -> Vec<u8> {
        match parse(frame).unwrap() {
            Frame::Update(u) => u,
            f => panic!("not an update: {f:?}"),
        }
    }

    #[test]
    fn replicas_converge_and_know_each_update_by_the_same_identity() {
        let (mut a, mut b) = (Replica::new("d", 1), Replica::new("d", 2));
        let (f, id) = a.edit(Key::Insert(0, "héllo"));
        assert_eq!(b.apply(&relayed(&f)).unwrap(), id);
        let (fa, ida) = a.edit(Key::Insert(5, "漢"));
        assert_ne!(ida, id, "successive inserts are told apart");
        let (fb1, idb1) = b.edit(Key::Delete(0));
        let (fb2, idb2) = b.edit(Key::Delete(0));
        assert!(ida != idb1 && idb1 != idb2, "{ida} {idb1} {idb2}");
        assert_eq!(b.apply(&relayed(&fa)).unwrap(), ida);
        assert_eq!(
            a.apply(&relayed(&fb1)).unwrap(),
            idb1,
            "a delete: known by what it deletes"
        );
        assert_eq!(a.apply(&relayed(&fb2)).unwrap(), idb2);
        assert_eq!(a.text(), b.text());
        assert_eq!(a.text(), "llo漢");
        assert_eq!(a.len(), 4);
    }

    #[test]
    fn frames_read_back_as_written() {
        let mut a = Replica::new("doc-1", 3);
        assert_eq!(
            parse(&auth("doc-1")).unwrap(),
            Frame::Other,
            "a token is not an answer"
        );
        let Frame::Step1(sv) = parse(&a.step1()).unwrap() else {
            panic!("step 1")
        };
        let Frame::Step2(_) = parse(&a.step2(&sv).unwrap()).unwrap() else {
            panic!("step 2")
        };
        assert_eq!(
            a.sent.pop_front(),
            Some((0, 0)),
            "a step 2 awaits its SyncStatus"
        );
        let mut ok = header("doc-1", SYNC_STATUS);
        ok.write_var(1u32);
        assert_eq!(parse(&ok).unwrap(), Frame::Saved(true));
        let mut authed = header("doc-1", AUTH);
        authed.write_var(AUTH_OK);
        authed.write_string("read-write");
        assert_eq!(parse(&authed).unwrap(), Frame::Authenticated);
    }
}
