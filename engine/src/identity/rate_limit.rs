//! The per-connection token bucket on messages sent: `messages` per `window`, refilled
//! continuously, with a warning when 80% of the bucket is used.
//!
//! Invariants: tokens stay within `0..=messages`; a warning is given once per descent below
//! 20% remaining and re-armed when the bucket refills above it.

use std::time::{Duration, Instant};

/// Share of the bucket left when the warning is given (80% used).
const WARN_REMAINING_RATIO: f64 = 0.2;

/// `messages` per `window`; the bucket holds `messages` tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub messages: u32,
    pub window: Duration,
}

impl RateLimit {
    /// Parses `off`, `game`, `chat` or `N/Ts` (`N/Tms`): N messages per T.
    pub fn parse(s: &str) -> Result<Option<RateLimit>, String> {
        let s = s.trim();
        match s {
            "off" => return Ok(None),
            "game" => return Ok(Some(RateLimit::GAME)),
            "chat" => return Ok(Some(RateLimit::CHAT)),
            _ => {}
        }
        let bad = || format!("`{s}`: expected off, game, chat, or N/Ts (e.g. 30/60s, 100/500ms)");
        let (n, t) = s.split_once('/').ok_or_else(bad)?;
        let messages: u32 = n.trim().parse().map_err(|_| bad())?;
        let t = t.trim();
        let window = if let Some(ms) = t.strip_suffix("ms") {
            Duration::from_millis(ms.parse().map_err(|_| bad())?)
        } else if let Some(secs) = t.strip_suffix('s') {
            Duration::from_secs(secs.parse().map_err(|_| bad())?)
        } else {
            return Err(bad());
        };
        if messages == 0 || window.is_zero() {
            return Err(format!("`{s}`: messages and window must be positive"));
        }
        Ok(Some(RateLimit { messages, window }))
    }

    /// Generous enough for a game client sending 60 updates a second with bursts.
    pub const GAME: RateLimit = RateLimit {
        messages: 240,
        window: Duration::from_secs(2),
    };

    /// Seed 001's chat preset: 30 messages a minute.
    pub const CHAT: RateLimit = RateLimit {
        messages: 30,
        window: Duration::from_secs(60),
    };
}

/// What taking one token gave.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    Allowed,
    /// Allowed, and 80% of the bucket is now used: tell the client.
    Warn {
        remaining: u32,
        full_in: Duration,
    },
    /// Refused: no token left; one comes back after `retry_in`.
    Limited {
        retry_in: Duration,
    },
}

#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    updated: Instant,
    warned: bool,
}

impl TokenBucket {
    pub fn new(limit: &RateLimit, now: Instant) -> Self {
        Self {
            tokens: limit.messages as f64,
            updated: now,
            warned: false,
        }
    }

    fn refill(&mut self, limit: &RateLimit, now: Instant) {
        let per_sec = limit.messages as f64 / limit.window.as_secs_f64();
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_sec).min(limit.messages as f64);
        self.updated = now;
        if self.tokens.floor() > limit.messages as f64 * WARN_REMAINING_RATIO {
            self.warned = false;
        }
    }

    fn time_for(limit: &RateLimit, tokens: f64) -> Duration {
        let per_sec = limit.messages as f64 / limit.window.as_secs_f64();
        Duration::from_secs_f64((tokens / per_sec).max(0.0))
    }

    /// Takes `n` tokens at once, or none: Err is the time until `n` are there (an `n` larger
    /// than the bucket is refused with the time to fill it).
    pub fn take_n(&mut self, limit: &RateLimit, now: Instant, n: u32) -> Result<(), Duration> {
        self.refill(limit, now);
        let n = f64::from(n);
        if self.tokens < n {
            let want = n.min(limit.messages as f64);
            return Err(Self::time_for(limit, (want - self.tokens).max(0.0)));
        }
        self.tokens -= n;
        Ok(())
    }

    /// Gives back `n` tokens taken by [`TokenBucket::take_n`] for a request another budget
    /// refused (never above the bucket's size).
    pub fn give_back(&mut self, limit: &RateLimit, n: u32) {
        self.tokens = (self.tokens + f64::from(n)).min(limit.messages as f64);
    }

    /// Takes `n` tokens for work already done, into debt if need be (at most one bucket's
    /// worth below empty): the next requests wait until it is paid back.
    pub fn debit(&mut self, limit: &RateLimit, now: Instant, n: u32) {
        self.refill(limit, now);
        let floor = -(limit.messages as f64);
        self.tokens = (self.tokens - f64::from(n)).max(floor);
    }

    /// Takes a token for one message.
    pub fn take(&mut self, limit: &RateLimit, now: Instant) -> Verdict {
        self.refill(limit, now);
        if self.tokens < 1.0 {
            return Verdict::Limited {
                retry_in: Self::time_for(limit, 1.0 - self.tokens),
            };
        }
        self.tokens -= 1.0;
        // Whole tokens: the refill since the last message must not postpone the warning.
        if !self.warned && self.tokens.floor() <= limit.messages as f64 * WARN_REMAINING_RATIO {
            self.warned = true;
            return Verdict::Warn {
                remaining: self.tokens as u32,
                full_in: Self::time_for(limit, limit.messages as f64 - self.tokens),
            };
        }
        Verdict::Allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_debit_goes_into_bounded_debt_that_refusals_then_pay_back() {
        let limit = RateLimit {
            messages: 10,
            window: Duration::from_secs(1),
        };
        let t0 = Instant::now();
        let mut b = TokenBucket::new(&limit, t0);
        b.debit(&limit, t0, 1_000);
        // At most one bucket below empty: 11 tokens to earn back at 10/s for the next one.
        let wait = b.take_n(&limit, t0, 1).unwrap_err();
        assert!((1.09..=1.11).contains(&wait.as_secs_f64()), "{wait:?}");
        assert!(b
            .take_n(&limit, t0 + Duration::from_millis(1000), 1)
            .is_err());
        assert!(b
            .take_n(&limit, t0 + Duration::from_millis(1150), 1)
            .is_ok());
    }

    #[test]
    fn parses_presets_and_rates() {
        assert_eq!(RateLimit::parse("off"), Ok(None));
        assert_eq!(RateLimit::parse("chat"), Ok(Some(RateLimit::CHAT)));
        assert_eq!(
            RateLimit::parse("100/500ms"),
            Ok(Some(RateLimit {
                messages: 100,
                window: Duration::from_millis(500)
            }))
        );
        assert_eq!(
            RateLimit::parse("30/60s").unwrap().unwrap().window,
            Duration::from_secs(60)
        );
        assert!(RateLimit::parse("0/1s").is_err());
        assert!(RateLimit::parse("30 per minute").is_err());
    }

    #[test]
    fn given_back_tokens_are_there_again_up_to_the_size() {
        let limit = RateLimit {
            messages: 10,
            window: Duration::from_secs(10),
        };
        let t0 = Instant::now();
        let mut b = TokenBucket::new(&limit, t0);
        assert!(b.take_n(&limit, t0, 10).is_ok());
        assert!(b.take_n(&limit, t0, 4).is_err());
        b.give_back(&limit, 4);
        assert!(b.take_n(&limit, t0, 4).is_ok());
        b.give_back(&limit, 100);
        assert!(b.take_n(&limit, t0, 10).is_ok(), "full, not more");
        assert!(b.take_n(&limit, t0, 1).is_err());
    }

    #[test]
    fn take_n_takes_all_or_nothing() {
        let limit = RateLimit {
            messages: 10,
            window: Duration::from_secs(10),
        };
        let t0 = Instant::now();
        let mut b = TokenBucket::new(&limit, t0);
        assert!(b.take_n(&limit, t0, 6).is_ok());
        let wait = b.take_n(&limit, t0, 6).unwrap_err();
        assert!(wait > Duration::from_millis(1900) && wait <= Duration::from_secs(2));
        assert!(
            b.take_n(&limit, t0, 4).is_ok(),
            "the refused take took nothing"
        );
        assert!(b.take_n(&limit, t0 + Duration::from_secs(1), 1).is_ok());
    }

    #[test]
    fn warns_once_at_80_percent_then_limits_then_refills() {
        let limit = RateLimit {
            messages: 10,
            window: Duration::from_secs(10),
        };
        let t0 = Instant::now();
        let mut b = TokenBucket::new(&limit, t0);
        let verdicts: Vec<Verdict> = (0..11).map(|_| b.take(&limit, t0)).collect();
        assert!(verdicts[..7].iter().all(|v| *v == Verdict::Allowed));
        assert!(matches!(verdicts[7], Verdict::Warn { remaining: 2, .. }));
        assert_eq!(verdicts[8], Verdict::Allowed);
        assert_eq!(verdicts[9], Verdict::Allowed);
        match verdicts[10] {
            Verdict::Limited { retry_in } => assert!(retry_in <= Duration::from_secs(1)),
            other => panic!("{other:?}"),
        }
        // One token a second comes back.
        assert_eq!(
            b.take(&limit, t0 + Duration::from_secs(1)),
            Verdict::Allowed
        );
        // A full refill re-arms the warning.
        let t1 = t0 + Duration::from_secs(60);
        let again: Vec<Verdict> = (0..8).map(|_| b.take(&limit, t1)).collect();
        assert!(matches!(again[7], Verdict::Warn { .. }));
    }
}
