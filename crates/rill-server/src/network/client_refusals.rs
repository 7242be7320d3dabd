//! Clients refused — a malformed frame or request, a failed TLS handshake,
//! a failed SASL authentication, a failed HTTP login — logged by kind in
//! spells rather than one line each: the first at WARN, with the client
//! and the cause; while they go on, at most one INFO line a minute with
//! how many more; and one INFO line once none has come for a minute, with
//! how many in all. Each one is still at DEBUG. A client trying passwords
//! as fast as it can fills no disk, and an operator still hears of it.

use std::fmt;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Why a client was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClientRefusal {
    /// A frame or request that could not be read; the connection closes.
    BadRequest,
    /// A TLS handshake that failed or never came.
    TlsHandshake,
    /// SASL authentication failed.
    Authentication,
    /// A login to the HTTP listener failed.
    HttpLogin,
}

impl ClientRefusal {
    const ALL: [ClientRefusal; 4] = [
        ClientRefusal::BadRequest,
        ClientRefusal::TlsHandshake,
        ClientRefusal::Authentication,
        ClientRefusal::HttpLogin,
    ];

    fn what(self) -> &'static str {
        match self {
            ClientRefusal::BadRequest => {
                "a client sent a request that cannot be read; closing its connection"
            }
            ClientRefusal::TlsHandshake => "a client's TLS handshake failed; connection refused",
            ClientRefusal::Authentication => {
                "a client's SASL authentication failed; closing its connection"
            }
            ClientRefusal::HttpLogin => "an HTTP login failed",
        }
    }
}

/// A spell ends when no refusal of its kind came for this long.
const QUIET: Duration = Duration::from_secs(60);
/// While a spell goes on, how often its count is said.
const SAY_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Spell {
    count: u64,
    /// Refusals since the count was last said.
    unsaid: u64,
    said_at: Instant,
    last_at: Instant,
}

/// What to log of a refusal.
#[derive(Debug, PartialEq, Eq)]
enum Say {
    /// The first of a spell, at WARN.
    Start,
    /// How many more since the last line, at INFO.
    More(u64),
    Nothing,
}

/// The spells going on, by kind.
#[derive(Debug, Default)]
struct Spells([Option<Spell>; 4]);

impl Spells {
    fn refused(&mut self, kind: ClientRefusal, now: Instant) -> Say {
        match &mut self.0[kind as usize] {
            slot @ None => {
                *slot = Some(Spell {
                    count: 1,
                    unsaid: 0,
                    said_at: now,
                    last_at: now,
                });
                Say::Start
            }
            Some(spell) => {
                spell.count += 1;
                spell.unsaid += 1;
                spell.last_at = now;
                if now.duration_since(spell.said_at) < SAY_EVERY {
                    return Say::Nothing;
                }
                spell.said_at = now;
                Say::More(std::mem::take(&mut spell.unsaid))
            }
        }
    }

    /// The spells quiet for [`QUIET`] end: each kind and its count.
    fn end_quiet(&mut self, now: Instant) -> Vec<(ClientRefusal, u64)> {
        let mut ended = Vec::new();
        for kind in ClientRefusal::ALL {
            let slot = &mut self.0[kind as usize];
            if slot
                .as_ref()
                .is_some_and(|s| now.duration_since(s.last_at) >= QUIET)
            {
                if let Some(spell) = slot.take() {
                    ended.push((kind, spell.count));
                }
            }
        }
        ended
    }
}

static SPELLS: Mutex<Spells> = parking_lot::const_mutex(Spells([None, None, None, None]));

/// `client` was refused for `kind`, because of `cause`.
pub(crate) fn refused(kind: ClientRefusal, client: &dyn fmt::Display, cause: &dyn fmt::Display) {
    tracing::debug!(%client, %cause, "{}", kind.what());
    let say = SPELLS.lock().refused(kind, Instant::now());
    match say {
        Say::Start => tracing::warn!(
            %client,
            %cause,
            "{}; more like it are counted, not logged, until none for a minute",
            kind.what()
        ),
        Say::More(more) => tracing::info!(
            more,
            "{}: {more} more in the last minute or so",
            kind.what()
        ),
        Say::Nothing => {}
    }
}

/// Says the end of each spell that has gone quiet; run every few seconds.
pub(crate) async fn end_quiet_spells() {
    let mut ticks = tokio::time::interval(Duration::from_secs(5));
    loop {
        ticks.tick().await;
        let ended = SPELLS.lock().end_quiet(Instant::now());
        for (kind, count) in ended {
            tracing::info!(
                refused = count,
                "{}: none for a minute now ({count} in all)",
                kind.what()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spell_is_said_at_its_start_once_a_minute_and_at_its_end() {
        let mut spells = Spells::default();
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let kind = ClientRefusal::Authentication;
        assert_eq!(spells.refused(kind, at(0)), Say::Start);
        for s in 1..60 {
            assert_eq!(spells.refused(kind, at(s)), Say::Nothing);
        }
        // Another kind is news of its own.
        assert_eq!(
            spells.refused(ClientRefusal::BadRequest, at(30)),
            Say::Start
        );
        assert_eq!(spells.refused(kind, at(60)), Say::More(60));
        assert_eq!(spells.refused(kind, at(61)), Say::Nothing);
        // Quiet for a minute: ended, with every refusal counted.
        assert_eq!(spells.end_quiet(at(100)), [(ClientRefusal::BadRequest, 1)]);
        assert_eq!(spells.end_quiet(at(121)), [(kind, 62)]);
        assert_eq!(spells.end_quiet(at(200)), []);
        assert_eq!(spells.refused(kind, at(201)), Say::Start);
    }
}
