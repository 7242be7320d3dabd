//! The error codes each response carries (Kafka's
//! `AbstractResponse.errorCounts`), counted by the broker's
//! `rill_request_errors_total`. Every response Rill encodes goes through
//! [`super::encode`], which asks for them: an API whose response has no
//! impl here does not compile.

use kafka_protocol::messages::*;

/// A response's error codes.
pub(crate) trait ErrorCodes {
    /// Calls `count` with each error code in the response, NONE included.
    fn error_codes(&self, count: &mut impl FnMut(i16));
}

/// The codes other than NONE in a response, each with how many times it
/// occurs: usually none or one.
#[derive(Debug, Default)]
pub(crate) struct ErrorCounts(Vec<(i16, u32)>);

impl ErrorCounts {
    pub(crate) fn of<T: ErrorCodes>(response: &T) -> ErrorCounts {
        let mut counts = ErrorCounts::default();
        response.error_codes(&mut |code| counts.add(code));
        counts
    }

    pub(crate) fn add(&mut self, code: i16) {
        if code == 0 {
            return;
        }
        match self.0.iter_mut().find(|(c, _)| *c == code) {
            Some((_, n)) => *n += 1,
            None => self.0.push((code, 1)),
        }
    }

    /// Each code and its count.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (i16, u32)> + '_ {
        self.0.iter().copied()
    }
}

impl ErrorCodes for AddOffsetsToTxnResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        count(self.error_code);
    }
}

impl ErrorCodes for AddPartitionsToTxnResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        count(self.error_code);
        for transaction in &self.results_by_transaction {
            for t in &transaction.topic_results {
                for p in &t.results_by_partition {
                    count(p.partition_error_code);
                }
            }
        }
        for t in &self.results_by_topic_v3_and_below {
            for p in &t.results_by_partition {
                count(p.partition_error_code);
            }
        }
    }
}

impl ErrorCodes for AlterClientQuotasResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        for e in &self.entries {
            count(e.error_code);
        }
    }
}

impl ErrorCodes for AlterConfigsResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        for r in &self.responses {
            count(r.error_code);
        }
    }
}

impl ErrorCodes for AlterPartitionReassignmentsResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        count(self.error_code);
        for r in &self.responses {
            for p in &r.partitions {
                count(p.error_code);
            }
        }
    }
}

impl ErrorCodes for AlterUserScramCredentialsResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        for r in &self.results {
            count(r.error_code);
        }
    }
}

impl ErrorCodes for ApiVersionsResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        count(self.error_code);
    }
}

impl ErrorCodes for CreateAclsResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        for r in &self.results {
            count(r.error_code);
        }
    }
}

impl ErrorCodes for CreatePartitionsResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        for r in &self.results {
            count(r.error_code);
        }
    }
}

impl ErrorCodes for CreateTopicsResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        for t in &self.topics {
            count(t.error_code);
            count(t.topic_config_error_code);
        }
    }
}

impl ErrorCodes for DeleteAclsResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        for f in &self.filter_results {
            count(f.error_code);
            for m in &f.matching_acls {
                count(m.error_code);
            }
        }
    }
}

impl ErrorCodes for DeleteGroupsResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        for r in &self.results {
            count(r.error_code);
        }
    }
}

impl ErrorCodes for DeleteRecordsResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        for t in &self.topics {
            for p in &t.partitions {
                count(p.error_code);
            }
        }
    }
}

impl ErrorCodes for DeleteTopicsResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        for r in &self.responses {
            count(r.error_code);
        }
    }
}

impl ErrorCodes for DescribeAclsResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        count(self.error_code);
    }
}

impl ErrorCodes for DescribeClientQuotasResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        count(self.error_code);
    }
}

impl ErrorCodes for DescribeClusterResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        count(self.error_code);
    }
}

impl ErrorCodes for DescribeConfigsResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        for r in &self.results {
            count(r.error_code);
        }
    }
}

impl ErrorCodes for DescribeGroupsResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        for g in &self.groups {
            count(g.error_code);
        }
    }
}

impl ErrorCodes for DescribeLogDirsResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        count(self.error_code);
        for r in &self.results {
            count(r.error_code);
        }
    }
}

impl ErrorCodes for DescribeProducersResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        for t in &self.topics {
            for p in &t.partitions {
                count(p.error_code);
            }
        }
    }
}

impl ErrorCodes for DescribeQuorumResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        count(self.error_code);
        for t in &self.topics {
            for p in &t.partitions {
                count(p.error_code);
            }
        }
    }
}

impl ErrorCodes for DescribeTopicPartitionsResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        for t in &self.topics {
            count(t.error_code);
            for p in &t.partitions {
                count(p.error_code);
            }
        }
    }
}

impl ErrorCodes for DescribeTransactionsResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        for t in &self.transaction_states {
            count(t.error_code);
        }
    }
}

impl ErrorCodes for DescribeUserScramCredentialsResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        count(self.error_code);
        for r in &self.results {
            count(r.error_code);
        }
    }
}

impl ErrorCodes for ElectLeadersResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        count(self.error_code);
        for r in &self.replica_election_results {
            for p in &r.partition_result {
                count(p.error_code);
            }
        }
    }
}

impl ErrorCodes for EndTxnResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        count(self.error_code);
    }
}

impl ErrorCodes for FetchResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        count(self.error_code);
        for r in &self.responses {
            for p in &r.partitions {
                count(p.error_code);
            }
        }
    }
}

impl ErrorCodes for FindCoordinatorResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        count(self.error_code);
        for c in &self.coordinators {
            count(c.error_code);
        }
    }
}

impl ErrorCodes for HeartbeatResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        count(self.error_code);
    }
}

impl ErrorCodes for IncrementalAlterConfigsResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        for r in &self.responses {
            count(r.error_code);
        }
    }
}

impl ErrorCodes for InitProducerIdResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        count(self.error_code);
    }
}

impl ErrorCodes for JoinGroupResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        count(self.error_code);
    }
}

impl ErrorCodes for LeaveGroupResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        count(self.error_code);
        for m in &self.members {
            count(m.error_code);
        }
    }
}

impl ErrorCodes for ListConfigResourcesResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        count(self.error_code);
    }
}

impl ErrorCodes for ListGroupsResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        count(self.error_code);
    }
}

impl ErrorCodes for ListOffsetsResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        for t in &self.topics {
            for p in &t.partitions {
                count(p.error_code);
            }
        }
    }
}

impl ErrorCodes for ListPartitionReassignmentsResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        count(self.error_code);
    }
}

impl ErrorCodes for ListTransactionsResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        count(self.error_code);
    }
}

impl ErrorCodes for MetadataResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        for t in &self.topics {
            count(t.error_code);
            for p in &t.partitions {
                count(p.error_code);
            }
        }
        count(self.error_code);
    }
}

impl ErrorCodes for OffsetCommitResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        for t in &self.topics {
            for p in &t.partitions {
                count(p.error_code);
            }
        }
    }
}

impl ErrorCodes for OffsetDeleteResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        count(self.error_code);
        for t in &self.topics {
            for p in &t.partitions {
                count(p.error_code);
            }
        }
    }
}

impl ErrorCodes for OffsetFetchResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        for t in &self.topics {
            for p in &t.partitions {
                count(p.error_code);
            }
        }
        count(self.error_code);
        for g in &self.groups {
            for t in &g.topics {
                for p in &t.partitions {
                    count(p.error_code);
                }
            }
            count(g.error_code);
        }
    }
}

impl ErrorCodes for OffsetForLeaderEpochResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        for t in &self.topics {
            for p in &t.partitions {
                count(p.error_code);
            }
        }
    }
}

impl ErrorCodes for ProduceResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        for r in &self.responses {
            for p in &r.partition_responses {
                count(p.error_code);
            }
        }
    }
}

impl ErrorCodes for SaslAuthenticateResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        count(self.error_code);
    }
}

impl ErrorCodes for SaslHandshakeResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        count(self.error_code);
    }
}

impl ErrorCodes for SyncGroupResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        count(self.error_code);
    }
}

impl ErrorCodes for TxnOffsetCommitResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        for t in &self.topics {
            for p in &t.partitions {
                count(p.error_code);
            }
        }
    }
}

impl ErrorCodes for WriteTxnMarkersResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        for m in &self.markers {
            for t in &m.topics {
                for p in &t.partitions {
                    count(p.error_code);
                }
            }
        }
    }
}

impl ErrorCodes for ConsumerGroupHeartbeatResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        count(self.error_code);
    }
}

impl ErrorCodes for ConsumerGroupDescribeResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        for g in &self.groups {
            count(g.error_code);
        }
    }
}

impl ErrorCodes for ShareGroupHeartbeatResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        count(self.error_code);
    }
}

impl ErrorCodes for ShareGroupDescribeResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        for g in &self.groups {
            count(g.error_code);
        }
    }
}

impl ErrorCodes for ShareFetchResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        count(self.error_code);
        for t in &self.responses {
            for p in &t.partitions {
                count(p.error_code);
                count(p.acknowledge_error_code);
            }
        }
    }
}

impl ErrorCodes for ShareAcknowledgeResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        count(self.error_code);
        for t in &self.responses {
            for p in &t.partitions {
                count(p.error_code);
            }
        }
    }
}

impl ErrorCodes for ReadShareGroupStateResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        for t in &self.results {
            for p in &t.partitions {
                count(p.error_code);
            }
        }
    }
}

impl ErrorCodes for DescribeShareGroupOffsetsResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        for g in &self.groups {
            count(g.error_code);
            for t in &g.topics {
                for p in &t.partitions {
                    count(p.error_code);
                }
            }
        }
    }
}

impl ErrorCodes for AlterShareGroupOffsetsResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        count(self.error_code);
        for t in &self.responses {
            for p in &t.partitions {
                count(p.error_code);
            }
        }
    }
}

impl ErrorCodes for DeleteShareGroupOffsetsResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        count(self.error_code);
        for t in &self.responses {
            count(t.error_code);
        }
    }
}

impl ErrorCodes for WriteShareGroupStateResponse {
    fn error_codes(&self, count: &mut impl FnMut(i16)) {
        for t in &self.results {
            for p in &t.partitions {
                count(p.error_code);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::ResponseError::{CorruptMessage, NotLeaderOrFollower};
    use kafka_protocol::messages::produce_response::{
        PartitionProduceResponse, TopicProduceResponse,
    };

    #[test]
    fn every_partition_error_is_counted_and_none_is_not() {
        let partitions = [0, NotLeaderOrFollower.code(), CorruptMessage.code()]
            .into_iter()
            .chain([NotLeaderOrFollower.code()])
            .map(|code| PartitionProduceResponse::default().with_error_code(code))
            .collect();
        let response = ProduceResponse::default().with_responses(vec![
            TopicProduceResponse::default().with_partition_responses(partitions),
            TopicProduceResponse::default(),
        ]);
        let counts: Vec<_> = ErrorCounts::of(&response).iter().collect();
        assert_eq!(
            counts,
            [(NotLeaderOrFollower.code(), 2), (CorruptMessage.code(), 1)]
        );
        assert_eq!(
            ErrorCounts::of(&ProduceResponse::default()).iter().count(),
            0
        );
    }
}
