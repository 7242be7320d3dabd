//! How a share group's partitions are spread over its members (Kafka's
//! `simple` share assignor): every subscribed partition goes to one
//! member, the least loaded of those subscribed to its topic; then each
//! member left with nothing shares the partition held by the fewest —
//! so four members on one partition all get work.
//!
//! The spread is sticky: a member keeps the partitions it had, up to its
//! fair share, and only the rest move. Members learn a new assignment at
//! their next heartbeat, each at its own time; a member that joins takes
//! partitions from others who, until they hear of it, still fetch them,
//! so no partition goes unread meanwhile. (Without stickiness every
//! partition could move at once, and one nobody had yet heard was theirs
//! went unread for a heartbeat interval.)

use std::collections::{BTreeMap, BTreeSet};

/// Each member's partitions, by topic.
pub type Assignment = BTreeMap<String, BTreeSet<i32>>;

/// Assigns the partitions of `topics` (name → partition count) to
/// `members` (id → subscribed topic names), keeping what each had in
/// `previous` where that stays fair. Deterministic: the same input gives
/// the same assignment on every broker.
pub fn assign(
    members: &BTreeMap<String, BTreeSet<String>>,
    topics: &BTreeMap<String, u32>,
    previous: &BTreeMap<String, Assignment>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members
        .keys()
        .map(|id| (id.clone(), Assignment::new()))
        .collect();
    let mut load: BTreeMap<&str, usize> = members.keys().map(|id| (id.as_str(), 0)).collect();
    let mut holders: BTreeMap<(&str, i32), usize> = BTreeMap::new();
    // The topics fewest members can take go first, while those members
    // are still free.
    let mut by_eligible: Vec<(Vec<&str>, &String, u32)> = topics
        .iter()
        .map(|(topic, count)| {
            let eligible: Vec<&str> = members
                .iter()
                .filter(|(_, subscribed)| subscribed.contains(topic))
                .map(|(id, _)| id.as_str())
                .collect();
            (eligible, topic, *count)
        })
        .filter(|(eligible, _, _)| !eligible.is_empty())
        .collect();
    by_eligible.sort_by_key(|(eligible, topic, _)| (eligible.len(), topic.as_str()));
    // A fair share: `partitions / takers` each, one more for the first
    // `partitions % takers` to reach it.
    let partitions: usize = by_eligible
        .iter()
        .map(|(_, _, count)| *count as usize)
        .sum();
    let takers = members
        .values()
        .filter(|subscribed| by_eligible.iter().any(|(_, t, _)| subscribed.contains(*t)))
        .count()
        .max(1);
    let (floor, mut above_floor) = (partitions / takers, partitions % takers);
    // Members keep what they had, those that had most first.
    let mut keepers: Vec<(&str, Vec<(&str, i32)>)> = members
        .iter()
        .map(|(id, subscribed)| {
            let kept = previous
                .get(id)
                .into_iter()
                .flatten()
                .filter(|(topic, _)| subscribed.contains(*topic))
                .filter_map(|(topic, held)| {
                    let (name, count) = topics.get_key_value(topic)?;
                    let count = i32::try_from(*count).unwrap_or(i32::MAX);
                    Some(
                        held.iter()
                            .filter(move |p| (0..count).contains(*p))
                            .map(move |p| (name.as_str(), *p)),
                    )
                })
                .flatten()
                .collect();
            (id.as_str(), kept)
        })
        .collect();
    keepers.sort_by_key(|(id, kept)| (std::cmp::Reverse(kept.len()), *id));
    for (id, kept) in keepers {
        let mut share = floor;
        if above_floor > 0 && kept.len() > floor {
            share += 1;
            above_floor -= 1;
        }
        for (topic, partition) in kept.into_iter().take(share) {
            if holders.contains_key(&(topic, partition)) {
                continue;
            }
            give(&mut out, id, topic, partition);
            *load.entry(id).or_default() += 1;
            holders.insert((topic, partition), 1);
        }
    }
    // The rest go to the least loaded.
    for (eligible, topic, count) in by_eligible {
        for partition in 0..i32::try_from(count).unwrap_or(i32::MAX) {
            if holders.contains_key(&(topic.as_str(), partition)) {
                continue;
            }
            let rotation = partition.unsigned_abs() as usize % eligible.len();
            let chosen = (0..eligible.len())
                .map(|i| eligible[(rotation + i) % eligible.len()])
                .min_by_key(|id| load.get(id).copied().unwrap_or(0));
            if let Some(id) = chosen {
                give(&mut out, id, topic, partition);
                *load.entry(id).or_default() += 1;
                holders.insert((topic.as_str(), partition), 1);
            }
        }
    }
    // Members with nothing share the partitions held by the fewest.
    let idle: Vec<(usize, &str)> = members
        .keys()
        .enumerate()
        .filter(|(_, id)| load.get(id.as_str()) == Some(&0))
        .map(|(i, id)| (i, id.as_str()))
        .collect();
    for (index, id) in idle {
        let subscribed = &members[id];
        let candidates: Vec<(&str, i32)> = holders
            .keys()
            .filter(|(topic, _)| subscribed.contains(*topic))
            .copied()
            .collect();
        if candidates.is_empty() {
            continue;
        }
        let rotation = index % candidates.len();
        let chosen = (0..candidates.len())
            .map(|i| candidates[(rotation + i) % candidates.len()])
            .min_by_key(|key| holders.get(key).copied().unwrap_or(0));
        if let Some(key) = chosen {
            give(&mut out, id, key.0, key.1);
            *holders.entry(key).or_default() += 1;
        }
    }
    out
}

fn give(out: &mut BTreeMap<String, Assignment>, member: &str, topic: &str, partition: i32) {
    if let Some(assignment) = out.get_mut(member) {
        assignment
            .entry(topic.to_string())
            .or_default()
            .insert(partition);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(spec: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
        spec.iter()
            .map(|(id, topics)| {
                (
                    id.to_string(),
                    topics.iter().map(|t| t.to_string()).collect(),
                )
            })
            .collect()
    }

    fn topics(spec: &[(&str, u32)]) -> BTreeMap<String, u32> {
        spec.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    fn count(assignment: &Assignment) -> usize {
        assignment.values().map(BTreeSet::len).sum()
    }

    #[test]
    fn more_members_than_partitions_share_them() {
        let m = members(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"]), ("d", &["t"])]);
        let out = assign(&m, &topics(&[("t", 1)]), &BTreeMap::new());
        for assignment in out.values() {
            assert_eq!(assignment["t"], BTreeSet::from([0]));
        }
        let out = assign(&m, &topics(&[("t", 2)]), &BTreeMap::new());
        let holders0 = out.values().filter(|a| a["t"].contains(&0)).count();
        assert_eq!(holders0, 2, "{out:?}");
        assert!(out.values().all(|a| count(a) == 1));
    }

    #[test]
    fn fewer_members_than_partitions_split_them_evenly() {
        let m = members(&[("a", &["t", "u"]), ("b", &["t", "u"]), ("c", &["t"])]);
        let out = assign(
            &m,
            &topics(&[("t", 4), ("u", 3), ("unsubscribed", 5)]),
            &BTreeMap::new(),
        );
        let counts: Vec<usize> = out.values().map(count).collect();
        assert_eq!(counts.iter().sum::<usize>(), 7);
        assert!(counts.iter().all(|c| (2..=3).contains(c)), "{out:?}");
        assert!(!out["c"].contains_key("u"));
        assert!(out.values().all(|a| !a.contains_key("unsubscribed")));
    }

    #[test]
    fn a_member_of_an_unknown_topic_gets_nothing() {
        let m = members(&[("a", &["missing"])]);
        assert_eq!(
            assign(&m, &topics(&[("t", 3)]), &BTreeMap::new())["a"],
            Assignment::new()
        );
    }

    #[test]
    fn a_joining_member_takes_only_its_share_and_others_keep_theirs() {
        let t = topics(&[("t", 8)]);
        let two = members(&[("a", &["t"]), ("b", &["t"])]);
        let before = assign(&two, &t, &BTreeMap::new());
        let three = members(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]);
        let after = assign(&three, &t, &before);
        let counts: Vec<usize> = after.values().map(count).collect();
        assert_eq!(counts.iter().sum::<usize>(), 8);
        assert!(counts.iter().all(|c| (2..=3).contains(c)), "{after:?}");
        for id in ["a", "b"] {
            assert!(
                after[id]["t"].is_subset(&before[id]["t"]),
                "{id} lost more than it gave"
            );
        }
    }

    #[test]
    fn no_partition_goes_unread_while_members_hear_of_joins_at_their_own_time() {
        // Members join one at a time; each knows the assignment of its own
        // last heartbeat. After each join, any of the earlier members may
        // have heartbeated since (every combination is tried): every
        // partition is in what some member knows, at every step.
        fn walk(
            order: &[&str],
            m: &BTreeMap<String, BTreeSet<String>>,
            current: &BTreeMap<String, Assignment>,
            known: &BTreeMap<String, Assignment>,
        ) {
            let Some((id, rest)) = order.split_first() else {
                return;
            };
            let t = topics(&[("t", 8)]);
            let mut m = m.clone();
            m.insert(id.to_string(), BTreeSet::from(["t".to_string()]));
            let current = assign(&m, &t, current);
            let others: Vec<&String> = known.keys().collect();
            for refreshed in 0..(1u32 << others.len()) {
                let mut known = known.clone();
                known.insert(id.to_string(), current[*id].clone());
                for (i, other) in others.iter().enumerate() {
                    if refreshed & (1 << i) != 0 {
                        known.insert(other.to_string(), current[*other].clone());
                    }
                }
                let read: BTreeSet<i32> = known
                    .values()
                    .flat_map(|a| a.get("t").into_iter().flatten().copied())
                    .collect();
                assert_eq!(read.len(), 8, "after {id} joined: {known:?}");
                walk(rest, &m, &current, &known);
            }
        }
        for order in [
            ["d", "a", "c", "b"],
            ["a", "b", "c", "d"],
            ["c", "d", "b", "a"],
        ] {
            walk(&order, &BTreeMap::new(), &BTreeMap::new(), &BTreeMap::new());
        }
    }
}
