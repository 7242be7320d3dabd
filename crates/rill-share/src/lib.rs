//! rill-share owns Kafka's share groups (KIP-932, "queues for Kafka"),
//! kept free of I/O so they can be tested by themselves:
//!
//! - [`ShareGroup`]: membership through ShareGroupHeartbeat — members,
//!   epochs, session timeouts — and the spread of the subscribed
//!   partitions over the members ([`assign`]), several members sharing a
//!   partition when there are more members than partitions;
//! - [`SharePartition`]: the delivery state of one partition's records
//!   for one group — available, acquired by a member under a time lock,
//!   acknowledged or archived — with delivery counts, the delivery limit,
//!   and Rill's redelivery backoff;
//! - dead letters ([`DeadLetterBatch`]): records given up on, written to
//!   the group's dead-letter topic exactly once (KIP-1191).
//!
//! The network front end drives both: it feeds requests, the records it
//! read from the log and the clock in, and answers with what they return.
//!
//! ```
//! use rill_share::{AckBatch, BatchSpan, SharePartition, ShareLimits};
//!
//! let limits = ShareLimits::default();
//! let mut partition = SharePartition::new(0);
//! let read = [BatchSpan { base_offset: 0, last_offset: 9, skipped: false }];
//! // Two members fetch the same batch: each gets records of its own.
//! let a = partition.acquire("a", &read, 5, (&limits, 0));
//! let b = partition.acquire("b", &read, 5, (&limits, 0));
//! assert_eq!((a[0].first_offset, a[0].last_offset), (0, 4));
//! assert_eq!((b[0].first_offset, b[0].last_offset), (5, 9));
//! // a accepts its records (type 1): they are never delivered again.
//! let accept = AckBatch { first_offset: 0, last_offset: 4, types: vec![1] };
//! partition.acknowledge("a", &[accept], (&limits, 0)).unwrap();
//! assert_eq!(partition.start_offset(), 5);
//! ```

mod assignor;
mod dead_letters;
mod error;
mod group;
mod partition;
mod state_records;
mod summary;

pub use assignor::{Assignment, assign};
pub use dead_letters::{DeadLetterBatch, DeadLetterMark, DeadLetterProducer};
pub use error::{AckError, HeartbeatError, StateRecordError};
pub use group::{
    Heartbeat, HeartbeatReply, JOIN_EPOCH, LEAVE_EPOCH, MembershipLimits, ShareGroup, ShareMember,
};
pub use partition::{
    AckBatch, AckType, Acquired, ArchiveReason, Archived, BatchSpan, DeliveryState, ShareLimits,
    SharePartition, StateBatch,
};
pub use state_records::{
    SHARE_STATE_TOPIC, ShareSnapshot, ShareStateKey, batch_tagged_fields, decode_key, decode_value,
    encode_key, encode_value, read_batch_tag, read_snapshot_tag, snapshot_tagged_fields,
};
pub use summary::{SUMMARY_TAG, Summary};
