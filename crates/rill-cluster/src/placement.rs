//! Replica placement for new topics: Kafka's rack-unaware assignment
//! (`AdminUtils.assignReplicasToBrokers`). Pure.
//!
//! Partition p's first replica (its preferred leader) is broker
//! `(p + start) % n`, so leaders go round the brokers; the other replicas
//! follow it at a shift that grows by one every n partitions, so the
//! followers of one broker's partitions spread over the others rather than
//! always being its neighbours.

use crate::metadata::{BrokerId, PARTITIONS_PER_TOPIC_MAX, REPLICAS_PER_PARTITION_MAX};

/// Why no assignment could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// Kafka's INVALID_REPLICATION_FACTOR.
    #[error(
        "replication factor {replication_factor} is larger than the {brokers} unfenced brokers"
    )]
    ReplicationFactorTooLarge {
        replication_factor: usize,
        brokers: usize,
    },
    #[error(
        "expected a replication factor in 1..={REPLICAS_PER_PARTITION_MAX}, found {replication_factor}"
    )]
    InvalidReplicationFactor { replication_factor: usize },
    /// Kafka's INVALID_PARTITIONS.
    #[error("expected 1..={PARTITIONS_PER_TOPIC_MAX} partitions, found {partitions}")]
    InvalidPartitions { partitions: usize },
}

/// Assigns `replication_factor` distinct brokers to each of `partitions`
/// partitions, preferred leader first. `brokers` are the eligible
/// (unfenced) brokers, in any order (they are sorted, as Kafka does);
/// `start` chooses where the round begins (Kafka picks it at random).
pub fn assign_replicas(
    brokers: &[BrokerId],
    partitions: usize,
    replication_factor: usize,
    start: u32,
) -> Result<Vec<Vec<BrokerId>>, PlacementError> {
    if partitions == 0 || partitions > PARTITIONS_PER_TOPIC_MAX {
        return Err(PlacementError::InvalidPartitions { partitions });
    }
    if replication_factor == 0 || replication_factor > REPLICAS_PER_PARTITION_MAX {
        return Err(PlacementError::InvalidReplicationFactor { replication_factor });
    }
    let mut brokers = brokers.to_vec();
    brokers.sort_unstable();
    brokers.dedup();
    let n = brokers.len();
    if replication_factor > n {
        return Err(PlacementError::ReplicationFactorTooLarge {
            replication_factor,
            brokers: n,
        });
    }
    // n >= 1 here. u32 -> usize is lossless on every supported target.
    let start = start as usize % n;
    let mut shift = start;
    let mut assignment = Vec::with_capacity(partitions);
    for partition in 0..partitions {
        if partition > 0 && partition % n == 0 {
            shift += 1;
        }
        let first = (partition + start) % n;
        let mut replicas = Vec::with_capacity(replication_factor);
        replicas.push(brokers[first]);
        for j in 0..replication_factor - 1 {
            // n >= 2 whenever this runs (replication_factor <= n).
            let offset = 1 + (shift + j) % (n - 1);
            replicas.push(brokers[(first + offset) % n]);
        }
        assert_eq!(replicas.len(), replication_factor);
        assignment.push(replicas);
    }
    Ok(assignment)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    fn ids(ids: &[i32]) -> Vec<BrokerId> {
        ids.iter().copied().map(BrokerId).collect()
    }

    fn leaders_per_broker(assignment: &[Vec<BrokerId>]) -> BTreeMap<BrokerId, usize> {
        let mut counts = BTreeMap::new();
        for replicas in assignment {
            *counts.entry(replicas[0]).or_default() += 1;
        }
        counts
    }

    #[test]
    fn leaders_spread_evenly_and_replicas_are_distinct() {
        for start in 0..6 {
            let assignment = assign_replicas(&ids(&[3, 1, 2]), 6, 3, start).unwrap();
            assert_eq!(assignment.len(), 6);
            assert_eq!(
                leaders_per_broker(&assignment),
                BTreeMap::from([(BrokerId(1), 2), (BrokerId(2), 2), (BrokerId(3), 2)])
            );
            for replicas in &assignment {
                let distinct: BTreeSet<_> = replicas.iter().collect();
                assert_eq!(distinct.len(), 3, "{replicas:?}");
            }
        }
    }

    #[test]
    fn it_matches_kafkas_assignment() {
        // Kafka's formula by hand: brokers 0..5, 10 partitions, RF 3,
        // fixed start index 0; the shift grows at partition 5.
        let assignment = assign_replicas(&ids(&[0, 1, 2, 3, 4]), 10, 3, 0).unwrap();
        let expected: Vec<Vec<BrokerId>> = [
            [0, 1, 2],
            [1, 2, 3],
            [2, 3, 4],
            [3, 4, 0],
            [4, 0, 1],
            [0, 2, 3],
            [1, 3, 4],
            [2, 4, 0],
            [3, 0, 1],
            [4, 1, 2],
        ]
        .iter()
        .map(|r| ids(r))
        .collect();
        assert_eq!(assignment, expected);
    }

    #[test]
    fn followers_of_one_leader_spread_over_the_others() {
        let assignment = assign_replicas(&ids(&[1, 2, 3, 4]), 8, 2, 0).unwrap();
        let followers_of_1: BTreeSet<BrokerId> = assignment
            .iter()
            .filter(|r| r[0] == BrokerId(1))
            .map(|r| r[1])
            .collect();
        assert_eq!(followers_of_1.len(), 2, "{assignment:?}");
    }

    #[test]
    fn impossible_requests_are_errors() {
        assert_eq!(
            assign_replicas(&ids(&[1, 2]), 3, 3, 0),
            Err(PlacementError::ReplicationFactorTooLarge {
                replication_factor: 3,
                brokers: 2
            })
        );
        assert_eq!(
            assign_replicas(&[], 1, 1, 0),
            Err(PlacementError::ReplicationFactorTooLarge {
                replication_factor: 1,
                brokers: 0
            })
        );
        assert!(matches!(
            assign_replicas(&ids(&[1]), 0, 1, 0),
            Err(PlacementError::InvalidPartitions { .. })
        ));
        assert!(matches!(
            assign_replicas(&ids(&[1]), 1, 0, 0),
            Err(PlacementError::InvalidReplicationFactor { .. })
        ));
        // A single broker with RF 1 works.
        assert_eq!(
            assign_replicas(&ids(&[7]), 2, 1, 5),
            Ok(vec![ids(&[7]), ids(&[7])])
        );
    }
}
