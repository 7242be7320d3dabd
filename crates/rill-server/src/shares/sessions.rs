//! Share sessions (KIP-932): each member's set of share-partitions on this
//! broker, opened by a ShareFetch at epoch 0, carried on by requests at the
//! next epoch (adding partitions, forgetting others), closed at epoch −1.
//!
//! Thread-safe: one mutex over the map, held for updates only.

use std::collections::{BTreeSet, HashMap};

use parking_lot::Mutex;
use uuid::Uuid;

/// The epoch that opens a session.
const OPEN_EPOCH: i32 = 0;
/// The epoch that closes one.
const CLOSE_EPOCH: i32 = -1;
/// The most sessions one broker keeps (`group.share.max.share.sessions`).
const SESSIONS_MAX: usize = 2_000;

/// A topic partition, as share requests name it.
pub(crate) type SharedPartition = (Uuid, i32);

#[derive(Debug)]
struct Session {
    /// The epoch the member's next request must carry.
    next_epoch: i32,
    /// The connection of its last request: when it closes, the session
    /// ends.
    connection: u64,
    partitions: BTreeSet<SharedPartition>,
}

/// What a request did to its session.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SessionUpdate {
    /// The session's partitions after the request.
    pub partitions: Vec<SharedPartition>,
    /// The request ends the session (epoch −1): fetch nothing more.
    pub closing: bool,
}

/// Why a request's session epoch was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SessionError {
    /// SHARE_SESSION_NOT_FOUND.
    NotFound,
    /// INVALID_SHARE_SESSION_EPOCH.
    InvalidEpoch,
    /// SHARE_SESSION_LIMIT_REACHED.
    LimitReached,
}

/// See the module doc.
#[derive(Debug, Default)]
pub(crate) struct ShareSessions {
    by_member: Mutex<HashMap<(String, String), Session>>,
}

impl ShareSessions {
    /// Applies a ShareFetch's (`fetch`) or ShareAcknowledge's session
    /// epoch and partition changes.
    pub(crate) fn update(
        &self,
        (group, member, connection): (&str, &str, u64),
        epoch: i32,
        fetch: bool,
        (add, forget): (&[SharedPartition], &[SharedPartition]),
    ) -> Result<SessionUpdate, SessionError> {
        let key = (group.to_string(), member.to_string());
        let mut sessions = self.by_member.lock();
        if epoch == OPEN_EPOCH {
            if !fetch {
                return Err(SessionError::InvalidEpoch);
            }
            if !sessions.contains_key(&key) && sessions.len() >= SESSIONS_MAX {
                return Err(SessionError::LimitReached);
            }
            let session = Session {
                next_epoch: 1,
                connection,
                partitions: add.iter().copied().collect(),
            };
            let partitions = session.partitions.iter().copied().collect();
            sessions.insert(key, session);
            return Ok(SessionUpdate {
                partitions,
                closing: false,
            });
        }
        let session = sessions.get_mut(&key).ok_or(SessionError::NotFound)?;
        if epoch == CLOSE_EPOCH {
            let partitions = session.partitions.iter().copied().collect();
            sessions.remove(&key);
            return Ok(SessionUpdate {
                partitions,
                closing: true,
            });
        }
        if epoch != session.next_epoch {
            return Err(SessionError::InvalidEpoch);
        }
        session.next_epoch = session.next_epoch.checked_add(1).unwrap_or(1);
        session.connection = connection;
        if fetch {
            session.partitions.extend(add.iter().copied());
            for gone in forget {
                session.partitions.remove(gone);
            }
        }
        Ok(SessionUpdate {
            partitions: session.partitions.iter().copied().collect(),
            closing: false,
        })
    }

    /// Ends the sessions whose last request came on `connection`, which
    /// closed: each one's group, member and partitions.
    pub(crate) fn close_connection(
        &self,
        connection: u64,
    ) -> Vec<(String, String, Vec<SharedPartition>)> {
        let mut sessions = self.by_member.lock();
        let closed: Vec<(String, String)> = sessions
            .iter()
            .filter(|(_, s)| s.connection == connection)
            .map(|(key, _)| key.clone())
            .collect();
        closed
            .into_iter()
            .filter_map(|key| {
                let session = sessions.remove(&key)?;
                Some((key.0, key.1, session.partitions.into_iter().collect()))
            })
            .collect()
    }

    /// Ends the member's session, if it has one.
    pub(crate) fn remove(&self, group: &str, member: &str) {
        self.by_member
            .lock()
            .remove(&(group.to_string(), member.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Uuid = Uuid::from_u128(7);
    const WHO: (&str, &str, u64) = ("g", "m", 1);

    #[test]
    fn a_session_opens_carries_on_at_each_next_epoch_and_closes() {
        let s = ShareSessions::default();
        assert_eq!(
            s.update(WHO, 1, true, (&[], &[])),
            Err(SessionError::NotFound)
        );
        let open = s.update(WHO, 0, true, (&[(T, 0), (T, 1)], &[])).unwrap();
        assert_eq!(open.partitions, [(T, 0), (T, 1)]);
        assert_eq!(
            s.update(WHO, 2, true, (&[], &[])),
            Err(SessionError::InvalidEpoch)
        );
        let next = s.update(WHO, 1, true, (&[(T, 2)], &[(T, 0)])).unwrap();
        assert_eq!(next.partitions, [(T, 1), (T, 2)]);
        // An acknowledgement moves the epoch on too, but not the partitions.
        let acked = s.update(WHO, 2, false, (&[(T, 5)], &[])).unwrap();
        assert_eq!(acked.partitions, [(T, 1), (T, 2)]);
        let closed = s.update(WHO, -1, false, (&[], &[])).unwrap();
        assert!(closed.closing);
        assert_eq!(
            s.update(WHO, 3, true, (&[], &[])),
            Err(SessionError::NotFound)
        );
        assert_eq!(
            s.update(WHO, 0, false, (&[], &[])),
            Err(SessionError::InvalidEpoch)
        );
    }

    #[test]
    fn a_closed_connection_ends_the_sessions_it_carried() {
        let s = ShareSessions::default();
        s.update(("g", "a", 1), 0, true, (&[(T, 0)], &[])).unwrap();
        s.update(("g", "b", 2), 0, true, (&[(T, 1)], &[])).unwrap();
        assert_eq!(
            s.close_connection(1),
            [("g".to_string(), "a".to_string(), vec![(T, 0)])]
        );
        assert_eq!(
            s.update(("g", "a", 3), 1, true, (&[], &[])),
            Err(SessionError::NotFound)
        );
        assert!(s.update(("g", "b", 2), 1, true, (&[], &[])).is_ok());
    }
}
