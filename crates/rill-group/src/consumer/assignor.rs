//! The server-side assignors of KIP-848: from the members' subscriptions
//! and the topics, each member's target assignment. `uniform` (Kafka's
//! default) spreads every subscribed partition so that two members able
//! to take the same partition never differ by more than one partition,
//! and keeps each partition with its previous owner where it can;
//! `range` gives each member contiguous ranges of every topic it is
//! subscribed to, as the classic range assignor does.

use std::collections::{BTreeMap, BTreeSet};

use super::assignment::{Assignment, TopicId, TopicsImage};

/// A server-side assignor, by Kafka's names (`group.consumer.assignors`,
/// and a member's `server_assignor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignor {
    Uniform,
    Range,
}

impl Assignor {
    /// The assignor Kafka knows by `name`: its short name or the class
    /// name Kafka's config also accepts.
    pub fn from_name(name: &str) -> Option<Assignor> {
        match name {
            "uniform" | "org.apache.kafka.coordinator.group.assignor.UniformAssignor" => {
                Some(Assignor::Uniform)
            }
            "range" | "org.apache.kafka.coordinator.group.assignor.RangeAssignor" => {
                Some(Assignor::Range)
            }
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Assignor::Uniform => "uniform",
            Assignor::Range => "range",
        }
    }
}

/// What an assignor knows of one member.
#[derive(Debug, Clone)]
pub struct AssignorMember<'a> {
    pub member_id: &'a str,
    /// The topics it is subscribed to that exist.
    pub subscribed: BTreeSet<TopicId>,
    /// Its target assignment so far (stickiness), if any.
    pub previous: Option<&'a Assignment>,
}

/// Each member's target assignment (every member gets an entry, maybe
/// empty). Every partition of a subscribed topic goes to exactly one
/// member subscribed to its topic.
pub fn assign(
    assignor: Assignor,
    members: &[AssignorMember<'_>],
    topics: &TopicsImage,
) -> BTreeMap<String, Assignment> {
    let assigned = match assignor {
        Assignor::Uniform => uniform(members, topics),
        Assignor::Range => range(members, topics),
    };
    let mut out: BTreeMap<String, Assignment> = members
        .iter()
        .map(|m| (m.member_id.to_owned(), Assignment::new()))
        .collect();
    for ((topic, partition), member) in assigned {
        if let Some(assignment) = out.get_mut(member) {
            assignment.entry(topic).or_default().insert(partition);
        }
    }
    out
}

/// The partitions of the subscribed topics that exist.
fn partitions_of(topic: TopicId, topics: &TopicsImage) -> std::ops::Range<i32> {
    0..topics.topic(topic).map_or(0, |t| t.partitions.max(0))
}

fn range<'a>(
    members: &[AssignorMember<'a>],
    topics: &TopicsImage,
) -> BTreeMap<(TopicId, i32), &'a str> {
    let mut by_topic: BTreeMap<TopicId, Vec<&'a str>> = BTreeMap::new();
    for member in members {
        for topic in &member.subscribed {
            by_topic.entry(*topic).or_default().push(member.member_id);
        }
    }
    let mut out = BTreeMap::new();
    for (topic, mut subscribers) in by_topic {
        subscribers.sort_unstable();
        let partitions = partitions_of(topic, topics).end;
        let n = i32::try_from(subscribers.len()).unwrap_or(i32::MAX);
        let (each, extra) = (partitions / n, partitions % n);
        let mut next = 0;
        for (i, member) in (0..).zip(subscribers) {
            let take = each + i32::from(i < extra);
            for partition in next..next + take {
                out.insert((topic, partition), member);
            }
            next += take;
        }
    }
    out
}

fn uniform<'a>(
    members: &[AssignorMember<'a>],
    topics: &TopicsImage,
) -> BTreeMap<(TopicId, i32), &'a str> {
    let subscribed: BTreeMap<&'a str, &BTreeSet<TopicId>> = members
        .iter()
        .map(|m| (m.member_id, &m.subscribed))
        .collect();
    let all_topics: BTreeSet<TopicId> = members
        .iter()
        .flat_map(|m| m.subscribed.iter().copied())
        .collect();
    let mut owner: BTreeMap<(TopicId, i32), &'a str> = BTreeMap::new();
    let mut counts: BTreeMap<&'a str, usize> = subscribed.keys().map(|m| (*m, 0)).collect();
    // Sticky: each partition stays where it was, if its owner still wants it.
    for member in members {
        let Some(previous) = member.previous else {
            continue;
        };
        for (topic, partitions) in previous {
            if !member.subscribed.contains(topic) {
                continue;
            }
            let range = partitions_of(*topic, topics);
            for partition in partitions.iter().filter(|p| range.contains(p)) {
                if owner
                    .insert((*topic, *partition), member.member_id)
                    .is_none()
                {
                    *counts.entry(member.member_id).or_default() += 1;
                }
            }
        }
    }
    // The rest: each to the least loaded member that can take it.
    for topic in &all_topics {
        for partition in partitions_of(*topic, topics) {
            if owner.contains_key(&(*topic, partition)) {
                continue;
            }
            let least = counts
                .iter()
                .filter(|(m, _)| subscribed.get(*m).is_some_and(|s| s.contains(topic)))
                .min_by_key(|(m, n)| (**n, **m))
                .map(|(m, _)| *m);
            if let Some(member) = least {
                owner.insert((*topic, partition), member);
                *counts.entry(member).or_default() += 1;
            }
        }
    }
    balance(&mut owner, &mut counts, &subscribed);
    owner
}

/// Moves partitions from the most to the least loaded members able to
/// take them until no two such members differ by more than one. Each move
/// lowers the sum of squared loads, so this ends; the bound is a backstop.
fn balance<'a>(
    owner: &mut BTreeMap<(TopicId, i32), &'a str>,
    counts: &mut BTreeMap<&'a str, usize>,
    subscribed: &BTreeMap<&'a str, &BTreeSet<TopicId>>,
) {
    let moves_max = owner.len().saturating_mul(counts.len()).saturating_add(1);
    for _ in 0..moves_max {
        let mut by_load: Vec<(&'a str, usize)> = counts.iter().map(|(m, n)| (*m, *n)).collect();
        by_load.sort_by_key(|(m, n)| (*n, *m));
        let mut moved = false;
        'search: for &(to, to_load) in &by_load {
            for &(from, from_load) in by_load.iter().rev() {
                if from_load <= to_load + 1 {
                    break;
                }
                let Some(wanted) = subscribed.get(to) else {
                    continue;
                };
                // The highest partition of `from` that `to` may take.
                let candidate = owner
                    .iter()
                    .rev()
                    .find(|((topic, _), m)| **m == from && wanted.contains(topic))
                    .map(|(tp, _)| *tp);
                if let Some(tp) = candidate {
                    owner.insert(tp, to);
                    *counts.entry(from).or_default() -= 1;
                    *counts.entry(to).or_default() += 1;
                    moved = true;
                    break 'search;
                }
            }
        }
        if !moved {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::assignment::{TopicInfo, count, topic_id};

    fn topics(spec: &[(u8, i32)]) -> TopicsImage {
        TopicsImage::new(spec.iter().map(|(n, partitions)| TopicInfo {
            id: topic_id(*n),
            name: format!("t{n}"),
            partitions: *partitions,
        }))
    }

    fn member<'a>(
        id: &'a str,
        subscribed: &[u8],
        previous: Option<&'a Assignment>,
    ) -> AssignorMember<'a> {
        AssignorMember {
            member_id: id,
            subscribed: subscribed.iter().map(|n| topic_id(*n)).collect(),
            previous,
        }
    }

    fn total(assignments: &BTreeMap<String, Assignment>) -> usize {
        assignments.values().map(count).sum()
    }

    fn loads(out: &BTreeMap<String, Assignment>) -> Vec<usize> {
        out.values().map(count).collect()
    }

    /// Every partition of the subscribed topics once, to a subscriber.
    fn check_complete(
        out: &BTreeMap<String, Assignment>,
        members: &[AssignorMember<'_>],
        image: &TopicsImage,
    ) {
        let mut seen = BTreeSet::new();
        for (member, assignment) in out {
            let subscribed = &members
                .iter()
                .find(|m| m.member_id == member)
                .unwrap()
                .subscribed;
            for (topic, partitions) in assignment {
                assert!(
                    subscribed.contains(topic),
                    "{member} got a topic it does not want"
                );
                for p in partitions {
                    assert!(seen.insert((*topic, *p)), "partition {p} assigned twice");
                }
            }
        }
        let expected: usize = members
            .iter()
            .flat_map(|m| m.subscribed.iter().copied())
            .collect::<BTreeSet<_>>()
            .iter()
            .map(|t| partitions_of(*t, image).len())
            .sum();
        assert_eq!(seen.len(), expected);
    }

    #[test]
    fn uniform_spreads_six_partitions_over_three_members() {
        let image = topics(&[(1, 6)]);
        let members = [
            member("a", &[1], None),
            member("b", &[1], None),
            member("c", &[1], None),
        ];
        let out = assign(Assignor::Uniform, &members, &image);
        check_complete(&out, &members, &image);
        assert_eq!(loads(&out), vec![2, 2, 2]);
    }

    #[test]
    fn uniform_is_sticky_when_a_member_joins() {
        let image = topics(&[(1, 6)]);
        let first = [member("a", &[1], None), member("b", &[1], None)];
        let before = assign(Assignor::Uniform, &first, &image);
        let members = [
            member("a", &[1], before.get("a")),
            member("b", &[1], before.get("b")),
            member("c", &[1], None),
        ];
        let after = assign(Assignor::Uniform, &members, &image);
        check_complete(&after, &members, &image);
        assert_eq!(loads(&after), vec![2, 2, 2]);
        // a and b each gave up one partition and kept the rest.
        for id in ["a", "b"] {
            let kept = crate::consumer::assignment::intersect(&before[id], &after[id]);
            assert_eq!(count(&kept), 2, "{id} kept {kept:?}");
        }
    }

    #[test]
    fn uniform_hands_a_leavers_partitions_to_the_others() {
        let image = topics(&[(1, 6)]);
        let first = [
            member("a", &[1], None),
            member("b", &[1], None),
            member("c", &[1], None),
        ];
        let before = assign(Assignor::Uniform, &first, &image);
        let members = [
            member("a", &[1], before.get("a")),
            member("b", &[1], before.get("b")),
        ];
        let after = assign(Assignor::Uniform, &members, &image);
        check_complete(&after, &members, &image);
        assert_eq!(loads(&after), vec![3, 3]);
        for id in ["a", "b"] {
            assert!(crate::consumer::assignment::is_subset(
                &before[id],
                &after[id]
            ));
        }
    }

    #[test]
    fn uniform_balances_heterogeneous_subscriptions() {
        let image = topics(&[(1, 4), (2, 4)]);
        let members = [
            member("a", &[1], None),
            member("b", &[1, 2], None),
            member("c", &[2], None),
        ];
        let out = assign(Assignor::Uniform, &members, &image);
        check_complete(&out, &members, &image);
        let l = loads(&out);
        assert!(
            l.iter().max().unwrap() - l.iter().min().unwrap() <= 1,
            "{l:?}"
        );
    }

    #[test]
    fn uniform_drops_partitions_of_topics_no_longer_subscribed() {
        let image = topics(&[(1, 2), (2, 2)]);
        let previous = crate::consumer::assignment::of(&[(1, &[0, 1]), (2, &[0, 1])]);
        let members = [member("a", &[2], Some(&previous))];
        let out = assign(Assignor::Uniform, &members, &image);
        assert_eq!(out["a"], crate::consumer::assignment::of(&[(2, &[0, 1])]));
    }

    #[test]
    fn range_gives_contiguous_ranges_extra_to_the_first() {
        let image = topics(&[(1, 7)]);
        let members = [
            member("b", &[1], None),
            member("a", &[1], None),
            member("c", &[1], None),
        ];
        let out = assign(Assignor::Range, &members, &image);
        check_complete(&out, &members, &image);
        assert_eq!(
            out["a"],
            crate::consumer::assignment::of(&[(1, &[0, 1, 2])])
        );
        assert_eq!(out["b"], crate::consumer::assignment::of(&[(1, &[3, 4])]));
        assert_eq!(out["c"], crate::consumer::assignment::of(&[(1, &[5, 6])]));
    }

    #[test]
    fn more_members_than_partitions_leaves_some_empty() {
        let image = topics(&[(1, 2)]);
        let members = [
            member("a", &[1], None),
            member("b", &[1], None),
            member("c", &[1], None),
        ];
        for assignor in [Assignor::Uniform, Assignor::Range] {
            let out = assign(assignor, &members, &image);
            check_complete(&out, &members, &image);
            assert_eq!(total(&out), 2);
            assert_eq!(out.len(), 3);
        }
    }

    #[test]
    fn names_are_kafkas() {
        assert_eq!(Assignor::from_name("uniform"), Some(Assignor::Uniform));
        assert_eq!(
            Assignor::from_name("org.apache.kafka.coordinator.group.assignor.RangeAssignor"),
            Some(Assignor::Range)
        );
        assert_eq!(Assignor::from_name("sticky"), None);
    }
}
