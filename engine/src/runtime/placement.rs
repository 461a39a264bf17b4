//! Placement: which shard owns a room or a user, and which shard a connection id names.
//!
//! Invariant: the owner depends only on the name and the shard count: the same in every
//! process, run and version (FNV-1a with a fixed basis, then a 64-bit finalizer).

/// Bits of a connection id that hold its shard (see [`connection_id`]).
pub const SHARD_BITS: u32 = 8;

/// A globally unique connection id: a per-shard sequence with the shard in the low bits.
pub fn connection_id(shard: usize, seq: u64) -> u64 {
    (seq << SHARD_BITS) | shard as u64
}

/// The shard a connection id belongs to.
pub fn shard_of(id: u64) -> usize {
    (id & ((1 << SHARD_BITS) - 1)) as usize
}

/// The shard that owns `room` among `shards`.
pub fn owner_shard(room: &str, shards: usize) -> usize {
    assert!(shards > 0, "a server has at least one shard");
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in room.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // splitmix64's finalizer spreads FNV's weak low bits before the modulo.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h % shards as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_their_shard() {
        for shard in [0, 1, 7, 255] {
            for seq in [0, 1, 1 << 40] {
                assert_eq!(shard_of(connection_id(shard, seq)), shard);
            }
        }
        assert_ne!(connection_id(1, 2), connection_id(2, 1));
    }

    #[test]
    fn stable_and_in_range() {
        // Fixed values: a change here moves every room and breaks mixed-version clusters.
        assert_eq!(owner_shard("general", 1), 0);
        let a = owner_shard("general", 16);
        assert_eq!(a, owner_shard("general", 16));
        for n in 1..20 {
            assert!(owner_shard("room", n) < n);
        }
    }

    #[test]
    fn spreads_rooms_evenly() {
        let shards = 4;
        let mut counts = [0usize; 4];
        for i in 0..4000 {
            counts[owner_shard(&format!("room-{i}"), shards)] += 1;
        }
        for c in counts {
            assert!((800..1200).contains(&c), "{counts:?}");
        }
    }
}
