//! Connections the listener could not take, said once per spell rather
//! than once per connection: accept failing (out of file descriptors,
//! most often), and max.connections reached. Each is logged at WARN when
//! it starts and at INFO, with a count, when connections are taken again.
//!
//! Owned by the accept loop; not shared.

use std::fmt;

/// Why a connection was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// accept(2) failed.
    AcceptFailed,
    /// max.connections were open.
    AtMaxConnections,
}

/// The refusals since connections were last taken.
#[derive(Debug, Default)]
pub(crate) struct Refusals {
    spell: Option<(Refusal, u64)>,
}

impl Refusals {
    /// A connection was refused for `why` (`detail` says more); whether
    /// this started a spell, and so was logged.
    pub(crate) fn refused(&mut self, why: Refusal, detail: &dyn fmt::Display) -> bool {
        match &mut self.spell {
            Some((kind, count)) if *kind == why => {
                *count += 1;
                false
            }
            _ => {
                self.spell = Some((why, 1));
                match why {
                    Refusal::AcceptFailed => tracing::warn!(
                        error = %detail,
                        "cannot accept connections; new clients wait or are refused until this \
                         clears (out of file descriptors? raise ulimit -n)"
                    ),
                    Refusal::AtMaxConnections => tracing::warn!(
                        max_connections = %detail,
                        "max.connections reached: new connections are closed at once until \
                         some close"
                    ),
                }
                true
            }
        }
    }

    /// A connection was taken: ends a spell, saying how many were refused.
    pub(crate) fn taken(&mut self) {
        if let Some((why, count)) = self.spell.take() {
            tracing::info!(refused = count, ?why, "taking new connections again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spell_of_refusals_is_said_once_and_its_end_once() {
        let mut refusals = Refusals::default();
        assert!(refusals.refused(Refusal::AcceptFailed, &"EMFILE"));
        assert!(!refusals.refused(Refusal::AcceptFailed, &"EMFILE"));
        assert!(!refusals.refused(Refusal::AcceptFailed, &"EMFILE"));
        // Another cause is news.
        assert!(refusals.refused(Refusal::AtMaxConnections, &16));
        refusals.taken();
        assert!(refusals.refused(Refusal::AtMaxConnections, &16));
    }
}
