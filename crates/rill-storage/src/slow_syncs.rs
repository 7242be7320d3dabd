//! Slow syncs, said once: when a file system's syncs start taking longer
//! than [`SLOW`] — every acks=all produce and every acknowledged write
//! waits for them — the broker warns once, and says when they are quick
//! again (under [`QUICK`]), with how many were slow and the worst. At most
//! one warning per [`WARN_EVERY`] per file system, however often it flaps.

use std::time::{Duration, Instant};

/// A sync longer than this starts a slow spell.
pub(crate) const SLOW: Duration = Duration::from_secs(1);
/// A sync shorter than this ends one (the gap keeps a disk hovering near
/// [`SLOW`] from flapping).
pub(crate) const QUICK: Duration = Duration::from_millis(100);
/// The least time between two warnings of one file system.
pub(crate) const WARN_EVERY: Duration = Duration::from_secs(60);

/// What to say after a sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Told {
    /// Syncs became slow: this one took `took`.
    Started { took: Duration },
    /// They are quick again after `slow` slow syncs, the worst `worst`,
    /// over `lasted`.
    Ended {
        slow: u64,
        worst: Duration,
        lasted: Duration,
    },
}

/// A slow spell under way.
#[derive(Debug)]
struct Spell {
    since: Instant,
    slow: u64,
    worst: Duration,
    /// Whether its start was said (else its end is not either).
    warned: bool,
}

/// One file system's syncs, as slow or not. Not thread-safe: its owner
/// locks it.
#[derive(Debug, Default)]
pub(crate) struct SlowSyncs {
    spell: Option<Spell>,
    last_warned: Option<Instant>,
}

impl SlowSyncs {
    /// A sync that ended at `now` took `took`: what to say, if anything.
    pub(crate) fn observe(&mut self, took: Duration, now: Instant) -> Option<Told> {
        if took > SLOW {
            if let Some(spell) = &mut self.spell {
                spell.slow += 1;
                spell.worst = spell.worst.max(took);
                return None;
            }
            let warned = self
                .last_warned
                .is_none_or(|at| now.duration_since(at) >= WARN_EVERY);
            if warned {
                self.last_warned = Some(now);
            }
            self.spell = Some(Spell {
                since: now,
                slow: 1,
                worst: took,
                warned,
            });
            return warned.then_some(Told::Started { took });
        }
        if took < QUICK {
            let spell = self.spell.take()?;
            return spell.warned.then(|| Told::Ended {
                slow: spell.slow,
                worst: spell.worst,
                lasted: now.duration_since(spell.since),
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLOWER: Duration = Duration::from_millis(1_500);
    const QUICKER: Duration = Duration::from_millis(1);

    #[test]
    fn a_slow_spell_is_said_when_it_starts_and_when_it_ends() {
        let mut syncs = SlowSyncs::default();
        let t0 = Instant::now();
        assert_eq!(syncs.observe(QUICKER, t0), None);
        assert_eq!(
            syncs.observe(SLOWER, t0),
            Some(Told::Started { took: SLOWER })
        );
        // More slow syncs, and ones between QUICK and SLOW: nothing new.
        assert_eq!(syncs.observe(Duration::from_secs(3), t0), None);
        assert_eq!(syncs.observe(Duration::from_millis(500), t0), None);
        assert_eq!(
            syncs.observe(QUICKER, t0 + Duration::from_secs(10)),
            Some(Told::Ended {
                slow: 2,
                worst: Duration::from_secs(3),
                lasted: Duration::from_secs(10),
            })
        );
        assert_eq!(syncs.observe(QUICKER, t0 + Duration::from_secs(11)), None);
    }

    #[test]
    fn a_flapping_disk_is_warned_of_once_a_minute() {
        let mut syncs = SlowSyncs::default();
        let t0 = Instant::now();
        assert!(syncs.observe(SLOWER, t0).is_some());
        assert!(
            syncs
                .observe(QUICKER, t0 + Duration::from_secs(1))
                .is_some()
        );
        // Slow again within the minute: neither start nor end is said.
        assert_eq!(syncs.observe(SLOWER, t0 + Duration::from_secs(2)), None);
        assert_eq!(syncs.observe(QUICKER, t0 + Duration::from_secs(3)), None);
        // A minute after the last warning, it is said again.
        assert_eq!(
            syncs.observe(SLOWER, t0 + WARN_EVERY),
            Some(Told::Started { took: SLOWER })
        );
    }
}
