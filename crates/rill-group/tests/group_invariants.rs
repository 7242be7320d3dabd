//! Random sequences of client actions against one group, checking the
//! invariants a consumer would notice if they broke.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use common::{GROUP, Harness, join_request, sync_request};
use proptest::prelude::*;
use rill_group::{GroupError, GroupState, Output, RequestToken};

#[derive(Debug, Clone)]
enum Op {
    Join(usize),
    Sync(usize),
    Heartbeat(usize),
    Leave(usize),
    Advance(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..4usize).prop_map(Op::Join),
        3 => (0..4usize).prop_map(Op::Sync),
        2 => (0..4usize).prop_map(Op::Heartbeat),
        1 => (0..4usize).prop_map(Op::Leave),
        3 => prop_oneof![Just(0i64), Just(1_000), Just(4_000), Just(11_000), Just(31_000)]
            .prop_map(Op::Advance),
    ]
}

/// What a client believes.
#[derive(Debug, Default, Clone)]
struct Client {
    member_id: String,
    generation_id: i32,
    /// Members from the JoinGroup answer, when this client leads.
    led_members: Vec<String>,
}

enum Sent {
    Join(usize),
    Sync {
        member_id: String,
        generation_id: i32,
    },
}

struct World {
    h: Harness,
    clients: Vec<Client>,
    sent: BTreeMap<RequestToken, Sent>,
    answered: BTreeSet<RequestToken>,
    leader_of_generation: BTreeMap<i32, String>,
    max_generation: i32,
}

impl World {
    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Join(c) => {
                let client = self.clients[c].clone();
                let token = self
                    .h
                    .join(join_request(&format!("c{c}"), &client.member_id));
                self.sent.insert(token, Sent::Join(c));
            }
            Op::Sync(c) => {
                let client = self.clients[c].clone();
                let g = client.generation_id;
                let assignments = client
                    .led_members
                    .iter()
                    .map(|m| (m.clone(), format!("{g}:{m}")))
                    .collect::<Vec<_>>();
                let mut request = sync_request(&client.member_id, g, vec![]);
                request.assignments = assignments
                    .into_iter()
                    .map(|(m, a)| (m, Bytes::from(a)))
                    .collect();
                let token = self.h.sync(request);
                self.sent.insert(
                    token,
                    Sent::Sync {
                        member_id: client.member_id,
                        generation_id: g,
                    },
                );
            }
            Op::Heartbeat(c) => {
                let client = self.clients[c].clone();
                let _ = self.h.heartbeat(&client.member_id, client.generation_id);
            }
            Op::Leave(c) => {
                let member_id = self.clients[c].member_id.clone();
                self.h.leave(&member_id);
                self.clients[c] = Client::default();
            }
            Op::Advance(ms) => self.h.advance(ms),
        }
        self.absorb_outputs();
        self.check_group();
    }

    fn absorb_outputs(&mut self) {
        for output in std::mem::take(&mut self.h.outputs) {
            match output {
                Output::JoinResponse { token, response } => {
                    assert!(self.answered.insert(token), "token {token} answered twice");
                    let Some(Sent::Join(c)) = self.sent.get(&token) else {
                        panic!("join answer for unknown token {token}");
                    };
                    let client = &mut self.clients[*c];
                    match response.error {
                        None => {
                            let g = response.generation_id;
                            let leader = self
                                .leader_of_generation
                                .entry(g)
                                .or_insert_with(|| response.leader.clone());
                            assert_eq!(*leader, response.leader, "two leaders in generation {g}");
                            client.member_id = response.member_id.clone();
                            client.generation_id = g;
                            client.led_members = response
                                .members
                                .iter()
                                .map(|m| m.member_id.clone())
                                .collect();
                            if !response.members.is_empty() {
                                assert_eq!(response.leader, response.member_id);
                            }
                        }
                        Some(GroupError::MemberIdRequired { member_id }) => {
                            client.member_id = member_id;
                        }
                        Some(GroupError::UnknownMemberId { .. }) => {
                            *client = Client::default();
                        }
                        Some(_) => {}
                    }
                }
                Output::SyncResponse { token, response } => {
                    assert!(self.answered.insert(token), "token {token} answered twice");
                    let Some(Sent::Sync {
                        member_id,
                        generation_id,
                    }) = self.sent.get(&token)
                    else {
                        panic!("sync answer for unknown token {token}");
                    };
                    if response.error.is_none() && !response.assignment.is_empty() {
                        assert_eq!(
                            response.assignment,
                            Bytes::from(format!("{generation_id}:{member_id}")),
                            "assignment from another generation or member"
                        );
                    }
                }
                Output::Persist(snapshot) => {
                    assert_eq!(snapshot.group_id, GROUP);
                    if let Some(leader) = &snapshot.leader {
                        assert!(snapshot.members.iter().any(|m| &m.member_id == leader));
                    }
                }
                Output::Tombstone { .. } => {}
            }
        }
    }

    fn check_group(&mut self) {
        let Some(overview) = self.h.coordinator.group_overview(GROUP) else {
            return;
        };
        assert!(
            overview.generation_id >= self.max_generation,
            "generation went back"
        );
        self.max_generation = overview.generation_id;
        let description = self.h.coordinator.describe_group(GROUP).unwrap();
        match overview.state {
            GroupState::Empty => assert!(description.members.is_empty()),
            GroupState::Stable | GroupState::CompletingRebalance => {
                assert!(!description.members.is_empty());
                assert!(overview.protocol_name.is_some());
            }
            GroupState::PreparingRebalance => {}
            GroupState::Dead => panic!("a live group is never Dead"),
        }
        let ids: BTreeSet<&str> = description
            .members
            .iter()
            .map(|m| m.member_id.as_str())
            .collect();
        assert_eq!(ids.len(), description.members.len());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_client_actions_keep_group_invariants(ops in proptest::collection::vec(op(), 1..80)) {
        let mut world = World {
            h: Harness::quick(),
            clients: vec![Client::default(); 4],
            sent: BTreeMap::new(),
            answered: BTreeSet::new(),
            leader_of_generation: BTreeMap::new(),
            max_generation: 0,
        };
        for op in &ops {
            world.apply(op);
        }
        // Left alone long enough, every waiting request gets its answer.
        world.apply(&Op::Advance(400_000));
        world.apply(&Op::Advance(400_000));
        world.apply(&Op::Advance(400_000));
        let unanswered: Vec<_> = world
            .sent
            .keys()
            .filter(|token| !world.answered.contains(token))
            .collect();
        prop_assert!(unanswered.is_empty(), "unanswered tokens {:?}", unanswered);
    }
}
