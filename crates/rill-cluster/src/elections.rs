//! Leader elections the controller leader computes from the metadata and
//! proposes as one command: moving partitions off a broker being fenced,
//! giving offline partitions back to a broker being unfenced, and putting
//! leadership back on preferred replicas. Pure functions of the state:
//! the command carries their result, and applying it checks it again.
//!
//! These elections are clean: a new leader is always an unfenced member
//! of the ISR, chosen in replica order. An unclean election (a replica
//! outside the ISR) happens only for topics with
//! unclean.leader.election.enable=true, as its own command
//! (`ClusterMetadata::unclean_election_commands`).

use std::collections::BTreeMap;

use crate::command::PartitionChange;
use crate::metadata::{BrokerId, ClusterMetadata, PartitionState, Topic};

impl ClusterMetadata {
    /// What fencing `broker` changes: it leaves every ISR that has another
    /// member (KIP-841; as the last member it stays, so a clean election
    /// can pick it when it returns), and each partition it led gets the
    /// first unfenced ISR member in replica order, or no leader.
    pub fn fence_changes(&self, broker: BrokerId) -> Vec<PartitionChange> {
        self.changes(|state| {
            let leads = state.leader == Some(broker);
            let others: Vec<BrokerId> =
                state.isr.iter().copied().filter(|b| *b != broker).collect();
            let isr = if others.is_empty() {
                state.isr.clone()
            } else {
                others
            };
            let leader = if leads {
                state
                    .replicas
                    .iter()
                    .copied()
                    .find(|r| *r != broker && isr.contains(r) && self.is_unfenced(*r))
            } else {
                state.leader
            };
            (leader, isr)
        })
    }

    /// What unfencing `broker` changes: it leads every offline partition
    /// whose ISR holds it (it was the last ISR member when it left).
    pub fn unfence_changes(&self, broker: BrokerId) -> Vec<PartitionChange> {
        self.changes(|state| {
            if state.leader.is_none() && state.isr.contains(&broker) {
                (Some(broker), state.isr.clone())
            } else {
                (state.leader, state.isr.clone())
            }
        })
    }

    /// Kafka's leader imbalance: whether some broker does not lead more
    /// than `percentage` % of the partitions it is the preferred (first)
    /// replica of — counting only those where it could lead (unfenced, in
    /// the ISR), so an election would change something.
    pub fn leaders_imbalanced(&self, percentage: u32) -> bool {
        let mut preferred: BTreeMap<BrokerId, (u64, u64)> = BTreeMap::new();
        for topic in self.topics.values() {
            for state in &topic.partitions {
                let Some(first) = state.replicas.first() else {
                    continue;
                };
                let entry = preferred.entry(*first).or_default();
                entry.0 += 1;
                if state.leader != Some(*first)
                    && state.isr.contains(first)
                    && self.is_unfenced(*first)
                {
                    entry.1 += 1;
                }
            }
        }
        preferred
            .values()
            .any(|(total, not_led)| *not_led * 100 > *total * u64::from(percentage))
    }

    /// A preferred-leader election: every partition whose first replica
    /// is unfenced and in the ISR but does not lead is led by it again.
    pub fn preferred_leader_changes(&self) -> Vec<PartitionChange> {
        self.changes(|state| match state.replicas.first() {
            Some(preferred)
                if state.leader != Some(*preferred)
                    && state.isr.contains(preferred)
                    && self.is_unfenced(*preferred) =>
            {
                (Some(*preferred), state.isr.clone())
            }
            _ => (state.leader, state.isr.clone()),
        })
    }

    /// Runs `elect` (giving a partition's new leader and ISR) over every
    /// partition in topic-name order, keeping those that change.
    fn changes(
        &self,
        elect: impl Fn(&PartitionState) -> (Option<BrokerId>, Vec<BrokerId>),
    ) -> Vec<PartitionChange> {
        let mut changes = Vec::new();
        for topic in self.topics.values() {
            changes.extend(topic_changes(topic, &elect));
        }
        changes
    }
}

fn topic_changes<'a>(
    topic: &'a Topic,
    elect: &'a impl Fn(&PartitionState) -> (Option<BrokerId>, Vec<BrokerId>),
) -> impl Iterator<Item = PartitionChange> + 'a {
    (0..)
        .zip(&topic.partitions)
        .filter_map(move |(partition, state)| {
            let (leader, isr) = elect(state);
            (leader != state.leader || isr != state.isr).then_some(PartitionChange {
                topic_id: topic.id,
                partition,
                partition_epoch: state.partition_epoch,
                leader,
                isr,
            })
        })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use uuid::Uuid;

    use crate::command::{Applied, Command, Rejection};
    use crate::metadata::{BrokerEpoch, LeaderEpoch, PartitionEpoch};

    use super::*;

    const TOPIC: Uuid = Uuid::from_u128(42);

    fn ids(ids: &[i32]) -> Vec<BrokerId> {
        ids.iter().copied().map(BrokerId).collect()
    }

    /// Brokers 1..=3 registered at indexes 1..=3 and unfenced, and topic
    /// "t" with the given assignment.
    fn cluster(assignment: &[&[i32]]) -> ClusterMetadata {
        let mut md = ClusterMetadata::default();
        for id in 1..=3 {
            let register = Command::RegisterBroker {
                broker_id: BrokerId(id),
                host: "127.0.0.1".to_owned(),
                port: 9092,
                listeners: Vec::new(),
            };
            let index = u64::try_from(id).unwrap_or(0);
            assert!(md.apply(&register, index).is_ok());
            let unfence = Command::UnfenceBroker {
                broker_id: BrokerId(id),
                broker_epoch: BrokerEpoch(index),
                partition_changes: vec![],
            };
            assert!(md.apply(&unfence, index + 10).is_ok());
        }
        let create = Command::CreateTopic {
            name: "t".to_owned(),
            topic_id: TOPIC,
            assignment: assignment.iter().map(|r| ids(r)).collect(),
            configs: BTreeMap::new(),
        };
        assert!(md.apply(&create, 20).is_ok());
        md
    }

    fn fence(md: &ClusterMetadata, broker: i32) -> Command {
        Command::FenceBroker {
            broker_id: BrokerId(broker),
            partition_changes: md.fence_changes(BrokerId(broker)),
        }
    }

    fn partition(md: &ClusterMetadata, p: usize) -> &PartitionState {
        &md.topics["t"].partitions[p]
    }

    #[test]
    fn fencing_moves_leadership_to_another_isr_member_and_leaves_the_isrs() {
        let mut md = cluster(&[&[2, 3, 1], &[1, 2, 3], &[3, 1]]);
        let command = fence(&md, 2);
        assert_eq!(
            md.apply(&command, 30),
            Ok(Applied::BrokerFenced {
                partitions_changed: 2
            })
        );
        assert!(md.brokers[&BrokerId(2)].fenced);
        // It led partition 0: the next replica in the ISR leads, one epoch on.
        let p0 = partition(&md, 0);
        assert_eq!(p0.leader, Some(BrokerId(3)));
        assert_eq!(p0.leader_epoch, LeaderEpoch(1));
        assert_eq!(p0.partition_epoch, PartitionEpoch(1));
        assert_eq!(p0.isr, ids(&[3, 1]));
        // It followed partition 1: it leaves the ISR, the leader stays.
        let p1 = partition(&md, 1);
        assert_eq!(p1.leader, Some(BrokerId(1)));
        assert_eq!(p1.leader_epoch, LeaderEpoch(0));
        assert_eq!(p1.isr, ids(&[1, 3]));
        // Not a replica of partition 2: untouched.
        assert_eq!(partition(&md, 2).partition_epoch, PartitionEpoch(0));
    }

    #[test]
    fn a_fenced_broker_is_not_elected_and_with_no_isr_member_left_there_is_no_leader() {
        let mut md = cluster(&[&[1, 2], &[2]]);
        let command = fence(&md, 2);
        assert!(md.apply(&command, 30).is_ok());
        let command = fence(&md, 1);
        assert_eq!(
            md.apply(&command, 31),
            Ok(Applied::BrokerFenced {
                partitions_changed: 1
            })
        );
        // Partition 0: 1 was the last ISR member; it stays in the ISR so a
        // clean election can pick it again, but nothing leads.
        let p0 = partition(&md, 0);
        assert_eq!(p0.leader, None);
        assert_eq!(p0.isr, ids(&[1]));
        assert_eq!(p0.leader_epoch, LeaderEpoch(1));
        assert_eq!(partition(&md, 1).leader, None);

        // Unfencing 1 gives it back the partition it was the last ISR member of.
        let unfence = Command::UnfenceBroker {
            broker_id: BrokerId(1),
            broker_epoch: BrokerEpoch(1),
            partition_changes: md.unfence_changes(BrokerId(1)),
        };
        assert_eq!(
            md.apply(&unfence, 32),
            Ok(Applied::BrokerUnfenced {
                partitions_changed: 1
            })
        );
        let p0 = partition(&md, 0);
        assert_eq!(p0.leader, Some(BrokerId(1)));
        assert_eq!(p0.leader_epoch, LeaderEpoch(2));
        assert_eq!(partition(&md, 1).leader, None);
    }

    #[test]
    fn stale_or_invalid_changes_are_rejected_and_change_nothing() {
        let mut md = cluster(&[&[2, 3, 1], &[2, 1]]);
        let computed = fence(&md, 2);
        // The partition moves on before the fence is applied.
        let shrink = Command::ChangePartition {
            topic: "t".to_owned(),
            partition: 0,
            leader: Some(BrokerId(2)),
            isr: ids(&[2, 3]),
        };
        assert!(md.apply(&shrink, 30).is_ok());
        let before = md.clone();
        assert_eq!(
            md.apply(&computed, 31),
            Err(Rejection::StalePartitionEpoch {
                topic_id: TOPIC,
                partition: 0,
                expected: PartitionEpoch(0),
                current: PartitionEpoch(1),
            })
        );
        // A fence that leaves it leading partition 1.
        let Command::FenceBroker {
            mut partition_changes,
            ..
        } = fence(&md, 2)
        else {
            panic!("fence computes a FenceBroker command")
        };
        let incomplete = Command::FenceBroker {
            broker_id: BrokerId(2),
            partition_changes: partition_changes[..1].to_vec(),
        };
        assert_eq!(
            md.apply(&incomplete, 32),
            Err(Rejection::FenceIncomplete {
                broker_id: BrokerId(2),
                topic_id: TOPIC,
                partition: 1
            })
        );
        // Electing the fenced broker itself, or adding to the ISR.
        let mut bad = partition_changes.clone();
        bad[0].leader = Some(BrokerId(2));
        bad[0].isr = ids(&[2, 3]);
        let elect_self = Command::FenceBroker {
            broker_id: BrokerId(2),
            partition_changes: bad,
        };
        assert_eq!(
            md.apply(&elect_self, 33),
            Err(Rejection::FenceIncomplete {
                broker_id: BrokerId(2),
                topic_id: TOPIC,
                partition: 0
            })
        );
        // Electing another fenced broker: 3 is fenced (leading nothing,
        // it stays in the ISRs) after the fence of 2 was computed.
        let to_3 = fence(&md, 2);
        assert!(matches!(
            &to_3,
            Command::FenceBroker { partition_changes, .. }
                if partition_changes[0].leader == Some(BrokerId(3))
        ));
        let mut with_3_fenced = md.clone();
        let fence_3 = Command::FenceBroker {
            broker_id: BrokerId(3),
            partition_changes: vec![],
        };
        assert!(with_3_fenced.apply(&fence_3, 33).is_ok());
        match with_3_fenced.apply(&to_3, 34) {
            Err(Rejection::InvalidPartitionChange { reason }) => {
                assert!(reason.contains("fenced"), "{reason}");
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
        partition_changes[1].isr = ids(&[1, 3]);
        let grow = Command::FenceBroker {
            broker_id: BrokerId(2),
            partition_changes,
        };
        assert!(matches!(
            md.apply(&grow, 34),
            Err(Rejection::InvalidPartitionChange { .. })
        ));
        let unknown = Command::ElectLeaders {
            partition_changes: vec![PartitionChange {
                topic_id: Uuid::from_u128(7),
                partition: 0,
                partition_epoch: PartitionEpoch(0),
                leader: None,
                isr: vec![],
            }],
        };
        assert_eq!(
            md.apply(&unknown, 35),
            Err(Rejection::UnknownTopicId {
                topic_id: Uuid::from_u128(7)
            })
        );
        assert_eq!(md, before);
        // Recomputed from the current state, it applies.
        let fresh = fence(&md, 2);
        assert!(md.apply(&fresh, 36).is_ok());
    }

    #[test]
    fn a_preferred_leader_election_puts_leadership_back_on_the_first_replica() {
        let mut md = cluster(&[&[2, 3, 1], &[3, 2]]);
        let command = fence(&md, 2);
        assert!(md.apply(&command, 30).is_ok());
        // Broker 2 comes back and the replication layer adds it back to
        // the ISR of partition 0 only.
        let unfence = Command::UnfenceBroker {
            broker_id: BrokerId(2),
            broker_epoch: BrokerEpoch(2),
            partition_changes: md.unfence_changes(BrokerId(2)),
        };
        assert!(md.apply(&unfence, 31).is_ok());
        let rejoin = Command::ChangePartition {
            topic: "t".to_owned(),
            partition: 0,
            leader: Some(BrokerId(3)),
            isr: ids(&[3, 1, 2]),
        };
        assert!(md.apply(&rejoin, 32).is_ok());

        let changes = md.preferred_leader_changes();
        assert_eq!(changes.len(), 1, "{changes:?}");
        let elect = Command::ElectLeaders {
            partition_changes: changes,
        };
        assert_eq!(
            md.apply(&elect, 33),
            Ok(Applied::LeadersElected {
                partitions_changed: 1
            })
        );
        let p0 = partition(&md, 0);
        assert_eq!(p0.leader, Some(BrokerId(2)));
        assert_eq!(p0.leader_epoch, LeaderEpoch(2));
        assert!(md.preferred_leader_changes().is_empty());
    }

    #[test]
    fn the_same_fences_give_the_same_state() {
        let replay = || {
            let mut md = cluster(&[&[1, 2, 3], &[2, 3, 1], &[3, 1, 2]]);
            let mut results = Vec::new();
            for (broker, index) in [(2, 30), (3, 31), (1, 32)] {
                let command = fence(&md, broker);
                results.push(md.apply(&command, index));
            }
            (md, results)
        };
        let (md, results) = replay();
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert_eq!((md.clone(), results), replay());
        assert!(md.topics["t"].partitions.iter().all(|p| p.leader.is_none()));
    }

    #[test]
    fn leaders_are_imbalanced_when_a_broker_leads_too_few_of_its_preferred_partitions() {
        // Broker 1 is preferred for 10 partitions.
        let assignment: Vec<&[i32]> = (0..10).map(|_| [1, 2, 3].as_slice()).collect();
        let mut md = cluster(&assignment);
        assert!(!md.leaders_imbalanced(10));
        // One of ten led elsewhere: 10%, not above it.
        std::sync::Arc::make_mut(md.topics.get_mut("t").unwrap()).partitions[0].leader =
            Some(BrokerId(2));
        assert!(!md.leaders_imbalanced(10));
        std::sync::Arc::make_mut(md.topics.get_mut("t").unwrap()).partitions[1].leader =
            Some(BrokerId(2));
        assert!(md.leaders_imbalanced(10));
        // Not if broker 1 could not lead them anyway (out of the ISR).
        for p in 0..2 {
            std::sync::Arc::make_mut(md.topics.get_mut("t").unwrap()).partitions[p].isr =
                ids(&[2, 3]);
        }
        assert!(!md.leaders_imbalanced(10));
    }
}
