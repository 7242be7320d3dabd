//! How a share group's partitions are spread over its members (Kafka's
//! `simple` share assignor): every subscribed partition goes to one
//! member, the least loaded of those subscribed to its topic; then each
//! member left with nothing shares the partition held by the fewest —
//! so four members on one partition all get work.

use std::collections::{BTreeMap, BTreeSet};

/// Each member's partitions, by topic.
pub type Assignment = BTreeMap<String, BTreeSet<i32>>;

/// Assigns the partitions of `topics` (name → partition count) to
/// `members` (id → subscribed topic names). Deterministic: the same input
/// gives the same assignment on every broker.
pub fn assign(
    members: &BTreeMap<String, BTreeSet<String>>,
    topics: &BTreeMap<String, u32>,
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
    for (eligible, topic, count) in by_eligible {
        for partition in 0..i32::try_from(count).unwrap_or(i32::MAX) {
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
        let out = assign(&m, &topics(&[("t", 1)]));
        for assignment in out.values() {
            assert_eq!(assignment["t"], BTreeSet::from([0]));
        }
        let out = assign(&m, &topics(&[("t", 2)]));
        let holders0 = out.values().filter(|a| a["t"].contains(&0)).count();
        assert_eq!(holders0, 2, "{out:?}");
        assert!(out.values().all(|a| count(a) == 1));
    }

    #[test]
    fn fewer_members_than_partitions_split_them_evenly() {
        let m = members(&[("a", &["t", "u"]), ("b", &["t", "u"]), ("c", &["t"])]);
        let out = assign(&m, &topics(&[("t", 4), ("u", 3), ("unsubscribed", 5)]));
        let counts: Vec<usize> = out.values().map(count).collect();
        assert_eq!(counts.iter().sum::<usize>(), 7);
        assert!(counts.iter().all(|c| (2..=3).contains(c)), "{out:?}");
        assert!(!out["c"].contains_key("u"));
        assert!(out.values().all(|a| !a.contains_key("unsubscribed")));
    }

    #[test]
    fn a_member_of_an_unknown_topic_gets_nothing() {
        let m = members(&[("a", &["missing"])]);
        assert_eq!(assign(&m, &topics(&[("t", 3)]))["a"], Assignment::new());
    }
}
