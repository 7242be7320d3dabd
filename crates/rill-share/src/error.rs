//! The errors of share groups, by operation.

use crate::partition::DeliveryState;

/// Why an acknowledgement was refused (nothing of it applied).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AckError {
    #[error(
        "acknowledgement batch {first_offset}..={last_offset} has {types} types: expected 1 or one per offset"
    )]
    InvalidBatch {
        first_offset: i64,
        last_offset: i64,
        types: usize,
    },
    #[error("unknown acknowledge type {code}: expected 0 (gap) to 3 (reject)")]
    UnknownType { code: i8 },
    #[error(
        "offset {offset} is not in flight: the share-partition holds {start_offset}..{end_offset}"
    )]
    NotInFlight {
        offset: i64,
        start_offset: i64,
        end_offset: i64,
    },
    #[error("offset {offset} is {state:?}, not acquired")]
    NotAcquired { offset: i64, state: DeliveryState },
    #[error("offset {offset} is acquired by another member")]
    AcquiredByAnother { offset: i64 },
    #[error("offset {offset} is acknowledged twice in one request")]
    Repeated { offset: i64 },
}

impl AckError {
    /// Whether the request itself is malformed (INVALID_REQUEST), rather
    /// than naming records in the wrong state (INVALID_RECORD_STATE).
    pub fn is_malformed(&self) -> bool {
        matches!(
            self,
            AckError::InvalidBatch { .. }
                | AckError::UnknownType { .. }
                | AckError::Repeated { .. }
        )
    }
}

/// Why a ShareGroupHeartbeat was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeartbeatError {
    #[error("{reason}")]
    InvalidRequest { reason: String },
    #[error("member {member_id} is not in the group")]
    UnknownMember { member_id: String },
    #[error("member epoch {got} is fenced: the member is at epoch {expected}")]
    FencedMemberEpoch { expected: i32, got: i32 },
    #[error("the group has its maximum of {max} members")]
    GroupMaxSizeReached { max: usize },
}

/// Why a record of `__share_group_state` could not be read or written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateRecordError {
    #[error("share state record: {0}")]
    Decode(#[from] rill_record::SchemaDecodeError),
    #[error("share state record: {0}")]
    Encode(#[from] rill_record::SchemaEncodeError),
    #[error("share state value version {version}: expected 0")]
    UnknownVersion { version: i16 },
    #[error("share state delivery state {state}: expected 0, 2 or 4")]
    UnknownDeliveryState { state: i8 },
    #[error("share state batch {first_offset}..={last_offset} ends before it starts")]
    BatchEndsBeforeStart { first_offset: i64, last_offset: i64 },
}
