//! Scenarios of the classic group protocol, driven with a fake clock.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

mod common;

use bytes::Bytes;
use common::{GROUP, Harness, REBALANCE_MS, SESSION_MS, join_request, protocol, sync_request};
use rill_group::{
    GroupConfig, GroupCoordinator, GroupError, GroupMetadataSnapshot, GroupState, HeartbeatRequest,
    LeaveGroupRequest, LeavingMember, MemberSnapshot, Output,
};

fn state(h: &Harness) -> GroupState {
    h.coordinator.group_overview(GROUP).unwrap().state
}

#[test]
fn two_members_join_leader_gets_metadata_and_sync_distributes_assignments() {
    let mut h = Harness::quick();
    let (a, ta) = h.join_new("a");
    assert_eq!(state(&h), GroupState::PreparingRebalance);
    let (b, tb) = h.join_new("b");
    assert!(a.starts_with("a-") && b.starts_with("b-") && a != b);
    // Answers wait for the rebalance (initial delay 0 fires on the tick).
    assert!(h.join_response(ta).is_none());
    h.advance(0);
    let ra = h.join_response(ta).unwrap();
    let rb = h.join_response(tb).unwrap();
    assert_eq!((ra.error.clone(), rb.error.clone()), (None, None));
    assert_eq!(ra.generation_id, 1);
    assert_eq!(rb.generation_id, 1);
    assert_eq!(ra.leader, a, "the first member to join leads");
    assert_eq!(rb.leader, a);
    assert_eq!(ra.protocol_name.as_deref(), Some("range"));
    assert_eq!(ra.protocol_type.as_deref(), Some("consumer"));
    let metadata: Vec<(String, Bytes)> = ra
        .members
        .iter()
        .map(|m| (m.member_id.clone(), m.metadata.clone()))
        .collect();
    assert_eq!(
        metadata,
        vec![
            (a.clone(), Bytes::from("m-a")),
            (b.clone(), Bytes::from("m-b"))
        ]
    );
    assert!(rb.members.is_empty(), "followers get no member list");
    assert_eq!(state(&h), GroupState::CompletingRebalance);

    // The follower syncs first and waits for the leader.
    let tf = h.sync(sync_request(&b, 1, vec![]));
    assert!(h.sync_response(tf).is_none());
    let tl = h.sync(sync_request(
        &a,
        1,
        vec![(a.clone(), "assign-a"), (b.clone(), "assign-b")],
    ));
    // The group record is persisted before the answers.
    let persist_at = h
        .outputs
        .iter()
        .position(|o| matches!(o, Output::Persist(_)))
        .unwrap();
    let first_sync_at = h
        .outputs
        .iter()
        .position(|o| matches!(o, Output::SyncResponse { .. }))
        .unwrap();
    assert!(persist_at < first_sync_at);
    let snapshot = h.persisted().pop().unwrap();
    assert_eq!(snapshot.generation_id, 1);
    assert_eq!(snapshot.leader.as_deref(), Some(a.as_str()));
    assert_eq!(snapshot.protocol_type, "consumer");
    assert_eq!(snapshot.members.len(), 2);
    assert_eq!(snapshot.members[1].assignment, Bytes::from("assign-b"));
    assert_eq!(snapshot.members[1].subscription, Bytes::from("m-b"));

    assert_eq!(
        h.sync_response(tl).unwrap().assignment,
        Bytes::from("assign-a")
    );
    let follower = h.sync_response(tf).unwrap();
    assert_eq!(follower.error, None);
    assert_eq!(follower.assignment, Bytes::from("assign-b"));
    assert_eq!(follower.protocol_name.as_deref(), Some("range"));
    assert_eq!(state(&h), GroupState::Stable);
}

#[test]
fn heartbeats_keep_members_and_session_expiry_rebalances_into_new_generation() {
    let mut h = Harness::quick();
    let (leader, follower, generation) = h.stable_pair();
    // Heartbeats every 3s keep both for a minute.
    for _ in 0..20 {
        h.advance(3_000);
        assert_eq!(h.heartbeat(&leader, generation), Ok(()));
        assert_eq!(h.heartbeat(&follower, generation), Ok(()));
    }
    assert_eq!(state(&h), GroupState::Stable);
    // The follower goes silent; the leader keeps heartbeating.
    h.advance(6_000);
    assert_eq!(h.heartbeat(&leader, generation), Ok(()));
    h.advance(4_001);
    assert_eq!(state(&h), GroupState::PreparingRebalance);
    assert!(matches!(
        h.heartbeat(&follower, generation),
        Err(GroupError::UnknownMemberId { .. })
    ));
    assert!(matches!(
        h.heartbeat(&leader, generation),
        Err(GroupError::RebalanceInProgress { .. })
    ));
    // The leader rejoins: everyone (only it) joined, so the rebalance ends.
    let t = h.join(join_request("a", &leader));
    let r = h.join_response(t).unwrap();
    assert_eq!(r.error, None);
    assert_eq!(r.generation_id, generation + 1);
    assert_eq!(r.leader, leader);
    assert_eq!(r.members.len(), 1);
}

#[test]
fn third_member_triggers_rebalance_and_others_rejoin() {
    let mut h = Harness::quick();
    let (leader, follower, generation) = h.stable_pair();
    let (c, tc) = h.join_new("c");
    assert_eq!(state(&h), GroupState::PreparingRebalance);
    assert!(h.join_response(tc).is_none());
    for member in [&leader, &follower] {
        assert!(matches!(
            h.heartbeat(member, generation),
            Err(GroupError::RebalanceInProgress { .. })
        ));
    }
    // A SyncGroup now is told to rejoin too.
    let ts = h.sync(sync_request(&follower, generation, vec![]));
    assert!(matches!(
        h.sync_response(ts).unwrap().error,
        Some(GroupError::RebalanceInProgress { .. })
    ));
    let tl = h.join(join_request("a", &leader));
    assert!(h.join_response(tl).is_none(), "waits for the follower");
    let tf = h.join(join_request("b", &follower));
    let rl = h.join_response(tl).unwrap();
    let rf = h.join_response(tf).unwrap();
    let rc = h.join_response(tc).unwrap();
    assert_eq!(rl.generation_id, generation + 1);
    assert_eq!(rf.generation_id, generation + 1);
    assert_eq!(rc.generation_id, generation + 1);
    assert_eq!(rl.leader, leader, "the leader is kept");
    assert_eq!(rl.members.len(), 3);
    assert_eq!(rc.leader, leader);
    assert!(rc.members.is_empty());
    assert_eq!(rc.member_id, c);
}

#[test]
fn leave_rebalances_and_last_leave_empties_the_group() {
    let mut h = Harness::quick();
    let (leader, follower, generation) = h.stable_pair();
    let rebalances = h.coordinator.completed_rebalances();
    assert!(rebalances >= 1, "forming the pair was a rebalance");
    assert_eq!(h.leave(&leader), None);
    assert_eq!(state(&h), GroupState::PreparingRebalance);
    let t = h.join(join_request("b", &follower));
    let r = h.join_response(t).unwrap();
    assert_eq!(r.generation_id, generation + 1);
    assert_eq!(h.coordinator.completed_rebalances(), rebalances + 1);
    assert_eq!(r.leader, follower, "leadership passes on");
    assert_eq!(r.members.len(), 1);
    // Unknown member in the batch: per-member error.
    assert!(matches!(
        h.leave("nobody"),
        Some(GroupError::UnknownMemberId { .. })
    ));
    assert_eq!(h.leave(&follower), None);
    // CompletingRebalance -> PreparingRebalance -> (all joined) -> Empty.
    assert_eq!(state(&h), GroupState::Empty);
    let overview = h.coordinator.group_overview(GROUP).unwrap();
    assert_eq!(overview.generation_id, generation + 2);
    assert_eq!(
        h.coordinator.completed_rebalances(),
        rebalances + 1,
        "emptying the group is a new generation, not a rebalance"
    );
    assert_eq!(overview.state_timestamp_ms, h.now_ms);
    let empty = h.persisted().pop().unwrap();
    assert!(empty.members.is_empty());
    assert_eq!(empty.protocol_name, None);
    assert_eq!(empty.generation_id, generation + 2);
}

#[test]
fn leave_in_batch_by_instance_id_and_unknown_group() {
    let mut h = Harness::quick();
    let mut request = join_request("s", "");
    request.group_instance_id = Some("instance-1".into());
    let t = h.join(request);
    h.advance(0);
    let r = h.join_response(t).unwrap();
    assert_eq!(r.error, None);
    assert!(r.member_id.starts_with("instance-1-"));
    let results = h
        .coordinator
        .leave_group(
            &LeaveGroupRequest {
                group_id: GROUP.into(),
                members: vec![
                    LeavingMember {
                        member_id: String::new(),
                        group_instance_id: Some("instance-1".into()),
                    },
                    LeavingMember {
                        member_id: String::new(),
                        group_instance_id: Some("instance-2".into()),
                    },
                ],
            },
            h.now_ms,
        )
        .unwrap();
    assert_eq!(results[0].error, None);
    assert!(matches!(
        results[1].error,
        Some(GroupError::UnknownMemberId { .. })
    ));
    assert_eq!(state(&h), GroupState::Empty);
    let results = h
        .coordinator
        .leave_group(
            &LeaveGroupRequest {
                group_id: "other".into(),
                members: vec![LeavingMember {
                    member_id: "x".into(),
                    group_instance_id: None,
                }],
            },
            h.now_ms,
        )
        .unwrap();
    assert!(matches!(
        results[0].error,
        Some(GroupError::UnknownMemberId { .. })
    ));
}

#[test]
fn member_id_required_only_from_v4_and_pending_ids_expire() {
    let mut h = Harness::quick();
    // v3: no MEMBER_ID_REQUIRED, the member is added at once.
    let mut old = join_request("old", "");
    old.require_known_member_id = false;
    let t = h.join(old);
    h.advance(0);
    let r = h.join_response(t).unwrap();
    assert_eq!(r.error, None);
    assert!(r.member_id.starts_with("old-"));
    assert_eq!(r.generation_id, 1);

    // v4: MEMBER_ID_REQUIRED; the pending id holds up no rebalance while the
    // group is Stable, and lapses after the session timeout.
    let t = h.join(join_request("new", ""));
    let pending = match h.join_response(t).unwrap().error {
        Some(GroupError::MemberIdRequired { member_id }) => member_id,
        other => panic!("{other:?}"),
    };
    assert_eq!(state(&h), GroupState::CompletingRebalance);
    h.advance(i64::from(SESSION_MS) + 1);
    let t = h.join(join_request("new", &pending));
    assert!(matches!(
        h.join_response(t).unwrap().error,
        Some(GroupError::UnknownMemberId { .. })
    ));
}

#[test]
fn pending_member_holds_the_rebalance_until_it_rejoins() {
    let mut h = Harness::quick();
    let (leader, _follower, _generation) = h.stable_pair();
    let t = h.join(join_request("c", ""));
    let pending = match h.join_response(t).unwrap().error {
        Some(GroupError::MemberIdRequired { member_id }) => member_id,
        other => panic!("{other:?}"),
    };
    // The leader forces a rebalance; the follower rejoins; the pending
    // member id must come back (or lapse) before the rebalance completes.
    let tl = h.join(join_request("a", &leader));
    let tf = h.join(join_request("b", &_follower));
    assert!(h.join_response(tl).is_none());
    assert!(h.join_response(tf).is_none());
    let tc = h.join(join_request("c", &pending));
    assert_eq!(h.join_response(tl).unwrap().members.len(), 3);
    assert_eq!(h.join_response(tc).unwrap().member_id, pending);
}

#[test]
fn static_member_restart_takes_over_without_rebalance_and_fences_old_id() {
    let mut h = Harness::quick();
    let static_join = |member_id: &str| {
        let mut request = join_request("s", member_id);
        request.group_instance_id = Some("inst".into());
        request
    };
    let (dynamic, td) = h.join_new("d");
    let ts = h.join(static_join(""));
    h.advance(0);
    let rd = h.join_response(td).unwrap();
    let rs = h.join_response(ts).unwrap();
    let old_id = rs.member_id.clone();
    let generation = rd.generation_id;
    assert_eq!(rd.leader, dynamic);
    let tl = h.sync(sync_request(
        &dynamic,
        generation,
        vec![(dynamic.clone(), "D"), (old_id.clone(), "S")],
    ));
    let mut sync_static = sync_request(&old_id, generation, vec![]);
    sync_static.group_instance_id = Some("inst".into());
    let ts = h.sync(sync_static);
    h.sync_response(tl).unwrap();
    h.sync_response(ts).unwrap();
    h.persisted();

    // Restart: same instance id, no member id.
    let t = h.join(static_join(""));
    let r = h.join_response(t).unwrap();
    assert_eq!(r.error, None);
    let new_id = r.member_id.clone();
    assert_ne!(new_id, old_id);
    assert_eq!(r.generation_id, generation, "no new generation");
    assert_eq!(state(&h), GroupState::Stable, "no rebalance");
    let persisted = h.persisted().pop().unwrap();
    assert!(persisted.members.iter().any(|m| m.member_id == new_id));
    assert!(!persisted.members.iter().any(|m| m.member_id == old_id));
    // It fetches its previous assignment.
    let mut sync_new = sync_request(&new_id, generation, vec![]);
    sync_new.group_instance_id = Some("inst".into());
    let t = h.sync(sync_new);
    assert_eq!(h.sync_response(t).unwrap().assignment, Bytes::from("S"));
    // The old member id is fenced.
    let fenced = h.coordinator.heartbeat(
        &HeartbeatRequest {
            group_id: GROUP.into(),
            member_id: old_id.clone(),
            generation_id: generation,
            group_instance_id: Some("inst".into()),
        },
        h.now_ms,
    );
    assert!(matches!(fenced, Err(GroupError::FencedInstanceId { .. })));
    let t = h.join(static_join(&old_id));
    assert!(matches!(
        h.join_response(t).unwrap().error,
        Some(GroupError::FencedInstanceId { .. })
    ));
    // The dynamic member saw nothing.
    assert_eq!(h.heartbeat(&dynamic, generation), Ok(()));
}

#[test]
fn static_leader_restart_hides_leadership_before_v9_and_skips_assignment_from_v9() {
    for supports_skip in [false, true] {
        let mut h = Harness::quick();
        let mut request = join_request("s", "");
        request.group_instance_id = Some("inst".into());
        let t = h.join(request.clone());
        h.advance(0);
        let old_id = h.join_response(t).unwrap().member_id;
        let mut sync = sync_request(&old_id, 1, vec![(old_id.clone(), "S")]);
        sync.group_instance_id = Some("inst".into());
        let t = h.sync(sync);
        h.sync_response(t).unwrap();
        request.supports_skip_assignment = supports_skip;
        let t = h.join(request);
        let r = h.join_response(t).unwrap();
        if supports_skip {
            assert_eq!(r.leader, r.member_id);
            assert!(r.skip_assignment);
            assert_eq!(r.members.len(), 1);
        } else {
            assert_eq!(r.leader, old_id);
            assert!(!r.skip_assignment);
            assert!(r.members.is_empty());
        }
    }
}

#[test]
fn static_member_restart_with_new_protocol_rebalances() {
    let mut h = Harness::quick();
    let mut request = join_request("s", "");
    request.group_instance_id = Some("inst".into());
    let t = h.join(request.clone());
    h.advance(0);
    let old_id = h.join_response(t).unwrap().member_id;
    let mut sync = sync_request(&old_id, 1, vec![(old_id.clone(), "S")]);
    sync.group_instance_id = Some("inst".into());
    let t = h.sync(sync);
    h.sync_response(t).unwrap();
    request.protocols = vec![protocol("sticky", "x"), protocol("range", "y")];
    let t = h.join(request);
    let r = h.join_response(t).unwrap();
    assert_eq!(r.generation_id, 2, "a rebalance selected the new protocol");
    assert_eq!(r.protocol_name.as_deref(), Some("sticky"));
}

#[test]
fn illegal_generation_and_unknown_member_id() {
    let mut h = Harness::quick();
    let (leader, follower, generation) = h.stable_pair();
    assert!(matches!(
        h.heartbeat(&leader, generation + 5),
        Err(GroupError::IllegalGeneration { expected, found, .. })
            if expected == generation && found == generation + 5
    ));
    assert!(matches!(
        h.heartbeat("stranger", generation),
        Err(GroupError::UnknownMemberId { .. })
    ));
    let t = h.sync(sync_request(&follower, generation - 1, vec![]));
    assert!(matches!(
        h.sync_response(t).unwrap().error,
        Some(GroupError::IllegalGeneration { .. })
    ));
    let t = h.sync(sync_request("stranger", generation, vec![]));
    assert!(matches!(
        h.sync_response(t).unwrap().error,
        Some(GroupError::UnknownMemberId { .. })
    ));
    let t = h.join(join_request("x", "stranger"));
    assert!(matches!(
        h.join_response(t).unwrap().error,
        Some(GroupError::UnknownMemberId { .. })
    ));
    // Unknown group: JoinGroup with a member id, SyncGroup and Heartbeat.
    let mut request = join_request("x", "m");
    request.group_id = "nope".into();
    let t = h.join(request);
    assert!(matches!(
        h.join_response(t).unwrap().error,
        Some(GroupError::UnknownMemberId { .. })
    ));
    assert!(h.coordinator.group_overview("nope").is_none());
    let result = h.coordinator.heartbeat(
        &HeartbeatRequest {
            group_id: "nope".into(),
            member_id: "m".into(),
            generation_id: 1,
            group_instance_id: None,
        },
        h.now_ms,
    );
    assert!(matches!(result, Err(GroupError::UnknownMemberId { .. })));
}

#[test]
fn sync_checks_protocol_type_and_name() {
    let mut h = Harness::quick();
    let (leader, _follower, generation) = h.stable_pair();
    let mut request = sync_request(&leader, generation, vec![]);
    request.protocol_type = Some("connect".into());
    let t = h.sync(request);
    assert!(matches!(
        h.sync_response(t).unwrap().error,
        Some(GroupError::InconsistentGroupProtocol { .. })
    ));
    let mut request = sync_request(&leader, generation, vec![]);
    request.protocol_name = Some("roundrobin".into());
    let t = h.sync(request);
    assert!(matches!(
        h.sync_response(t).unwrap().error,
        Some(GroupError::InconsistentGroupProtocol { .. })
    ));
    // Before v5 the fields are absent and not checked.
    let mut request = sync_request(&leader, generation, vec![]);
    request.protocol_type = None;
    request.protocol_name = None;
    let t = h.sync(request);
    assert_eq!(h.sync_response(t).unwrap().assignment, Bytes::from("L"));
}

#[test]
fn protocol_selection_by_vote_and_inconsistent_protocols() {
    let mut h = Harness::quick();
    let mut a = join_request("a", "");
    a.require_known_member_id = false;
    a.protocols = vec![protocol("roundrobin", "a1"), protocol("range", "a2")];
    let mut b = a.clone();
    b.client_id = "b".into();
    b.protocols = vec![protocol("range", "b1"), protocol("roundrobin", "b2")];
    let mut c = a.clone();
    c.client_id = "c".into();
    c.protocols = vec![
        protocol("sticky", "c0"),
        protocol("range", "c1"),
        protocol("roundrobin", "c2"),
    ];
    let ta = h.join(a.clone());
    let tb = h.join(b);
    let tc = h.join(c);
    // A member sharing no protocol with the group is refused.
    let mut d = a.clone();
    d.protocols = vec![protocol("sticky", "d")];
    let td = h.join(d);
    assert!(matches!(
        h.join_response(td).unwrap().error,
        Some(GroupError::InconsistentGroupProtocol { .. })
    ));
    // So is another protocol type.
    let mut e = a;
    e.protocol_type = "connect".into();
    let te = h.join(e);
    assert!(matches!(
        h.join_response(te).unwrap().error,
        Some(GroupError::InconsistentGroupProtocol { .. })
    ));
    h.advance(0);
    let ra = h.join_response(ta).unwrap();
    // Candidates {range, roundrobin}; votes: roundrobin 1, range 2.
    assert_eq!(ra.protocol_name.as_deref(), Some("range"));
    let metadata: Vec<Bytes> = ra.members.iter().map(|m| m.metadata.clone()).collect();
    assert_eq!(
        metadata,
        vec![Bytes::from("a2"), Bytes::from("b1"), Bytes::from("c1")]
    );
    assert!(h.join_response(tb).is_some() && h.join_response(tc).is_some());
}

#[test]
fn empty_protocol_type_or_list_is_inconsistent_for_a_new_group() {
    let mut h = Harness::quick();
    let mut request = join_request("a", "");
    request.protocol_type = String::new();
    let t = h.join(request);
    assert!(matches!(
        h.join_response(t).unwrap().error,
        Some(GroupError::InconsistentGroupProtocol { .. })
    ));
    let mut request = join_request("a", "");
    request.protocols.clear();
    let t = h.join(request);
    assert!(matches!(
        h.join_response(t).unwrap().error,
        Some(GroupError::InconsistentGroupProtocol { .. })
    ));
    assert!(h.coordinator.group_overview(GROUP).is_none());
}

#[test]
fn initial_rebalance_delay_extends_as_members_join() {
    let mut h = Harness::new(GroupConfig {
        initial_rebalance_delay_ms: 3_000,
        ..GroupConfig::default()
    });
    let (_a, ta) = h.join_new("a");
    assert_eq!(h.coordinator.next_deadline(), Some(h.now_ms + 3_000));
    h.advance(2_000);
    let (_b, tb) = h.join_new("b");
    // Everyone joined, but the initial delay never completes early.
    h.advance(999);
    assert!(h.join_response(ta).is_none());
    // At 3s: a member joined meanwhile, so wait another delay.
    h.advance(1);
    assert!(h.join_response(ta).is_none());
    h.advance(2_999);
    assert!(h.join_response(ta).is_none());
    h.advance(1);
    let ra = h.join_response(ta).unwrap();
    assert_eq!(ra.generation_id, 1);
    assert_eq!(ra.members.len(), 2);
    assert!(h.join_response(tb).is_some());
}

#[test]
fn initial_delay_is_capped_by_the_rebalance_timeout() {
    let mut h = Harness::new(GroupConfig {
        initial_rebalance_delay_ms: 3_000,
        ..GroupConfig::default()
    });
    let mut first = join_request("a", "");
    first.require_known_member_id = false;
    first.rebalance_timeout_ms = 4_000;
    let ta = h.join(first.clone());
    let start = h.now_ms;
    // Keep adding members every second.
    let mut tokens = vec![ta];
    for i in 0..20 {
        h.advance(1_000);
        if h.join_response(ta).is_some() {
            // delay 3000, then min(3000, remaining 1000) = 1000: 4000 total.
            assert_eq!(h.now_ms - start, 4_000, "after {i} extra members");
            return;
        }
        let mut next = first.clone();
        next.client_id = format!("c{i}");
        tokens.push(h.join(next));
    }
    panic!("the initial delay never ended");
}

#[test]
fn rebalance_timeout_removes_members_that_did_not_rejoin() {
    let mut h = Harness::quick();
    let (leader, follower, generation) = h.stable_pair();
    // The leader rejoins (forcing a rebalance); the follower keeps
    // heartbeating but never rejoins.
    let tl = h.join(join_request("a", &leader));
    for _ in 0..9 {
        h.advance(3_000);
        assert!(matches!(
            h.heartbeat(&follower, generation),
            Err(GroupError::RebalanceInProgress { .. })
        ));
        assert!(h.join_response(tl).is_none());
    }
    h.advance(i64::from(REBALANCE_MS) - 27_000);
    let r = h.join_response(tl).unwrap();
    assert_eq!(r.generation_id, generation + 1);
    assert_eq!(r.members.len(), 1);
    assert!(matches!(
        h.heartbeat(&follower, generation + 1),
        Err(GroupError::UnknownMemberId { .. })
    ));
}

#[test]
fn members_that_never_sync_are_removed_after_the_rebalance_timeout() {
    let mut h = Harness::quick();
    let (a, ta) = h.join_new("a");
    let (b, tb) = h.join_new("b");
    h.advance(0);
    let generation = h.join_response(ta).unwrap().generation_id;
    h.join_response(tb).unwrap();
    // Only the follower syncs; heartbeats keep sessions alive, but the
    // leader never sends its assignment.
    let tf = h.sync(sync_request(&b, generation, vec![]));
    for _ in 0..10 {
        h.advance(3_000);
        let _ = h.heartbeat(&a, generation);
    }
    assert_eq!(state(&h), GroupState::PreparingRebalance);
    assert!(matches!(
        h.sync_response(tf).unwrap().error,
        Some(GroupError::RebalanceInProgress { .. })
    ));
    assert!(matches!(
        h.heartbeat(&a, generation),
        Err(GroupError::UnknownMemberId { .. })
    ));
}

#[test]
fn leader_rejoin_forces_rebalance_but_unchanged_follower_gets_current_generation() {
    let mut h = Harness::quick();
    let (leader, follower, generation) = h.stable_pair();
    let tf = h.join(join_request("b", &follower));
    let rf = h.join_response(tf).unwrap();
    assert_eq!(rf.generation_id, generation);
    assert_eq!(state(&h), GroupState::Stable);
    let tl = h.join(join_request("a", &leader));
    assert!(h.join_response(tl).is_none());
    assert_eq!(state(&h), GroupState::PreparingRebalance);
}

#[test]
fn loading_state_answers_load_in_progress_then_restored_groups_serve() {
    let mut coordinator = GroupCoordinator::new(GroupConfig::default(), 7);
    assert!(coordinator.is_loading());
    coordinator.join_group(1, join_request("a", ""), 0);
    assert!(matches!(
        coordinator.take_outputs().as_slice(),
        [Output::JoinResponse { token: 1, response }]
            if response.error == Some(GroupError::CoordinatorLoadInProgress)
    ));
    assert_eq!(
        coordinator.list_groups(&[]),
        Err(GroupError::CoordinatorLoadInProgress)
    );
    assert_eq!(
        coordinator.describe_group(GROUP),
        Err(GroupError::CoordinatorLoadInProgress)
    );
    let snapshot = GroupMetadataSnapshot {
        group_id: GROUP.into(),
        protocol_type: "consumer".into(),
        generation_id: 7,
        protocol_name: Some("range".into()),
        leader: Some("m1".into()),
        current_state_timestamp_ms: 5,
        members: vec![MemberSnapshot {
            member_id: "m1".into(),
            group_instance_id: Some("i1".into()),
            client_id: "c".into(),
            client_host: "/h".into(),
            rebalance_timeout_ms: REBALANCE_MS,
            session_timeout_ms: SESSION_MS,
            subscription: Bytes::from("sub"),
            assignment: Bytes::from("asg"),
        }],
    };
    coordinator.restore(snapshot.clone(), 100).unwrap();
    let heartbeat = HeartbeatRequest {
        group_id: GROUP.into(),
        member_id: "m1".into(),
        generation_id: 7,
        group_instance_id: None,
    };
    assert_eq!(
        coordinator.heartbeat(&heartbeat, 100),
        Err(GroupError::CoordinatorLoadInProgress)
    );
    coordinator.finish_loading();
    assert_eq!(coordinator.heartbeat(&heartbeat, 200), Ok(()));
    let description = coordinator.describe_group(GROUP).unwrap();
    assert_eq!(description.state, GroupState::Stable);
    assert_eq!(description.protocol, "range");
    assert_eq!(description.members[0].assignment, Bytes::from("asg"));
    assert_eq!(description.members[0].metadata, Bytes::from("sub"));
    assert_eq!(
        description.members[0].group_instance_id.as_deref(),
        Some("i1")
    );
    // Its session runs from the last heartbeat.
    assert_eq!(
        coordinator.next_deadline(),
        Some(200 + i64::from(SESSION_MS))
    );
    coordinator.tick(200 + i64::from(SESSION_MS));
    // Removed; the group rebalances to Empty.
    assert_eq!(
        coordinator.group_overview(GROUP).unwrap().state,
        GroupState::Empty
    );
    // A record whose leader is not a member is refused.
    let mut bad = snapshot;
    bad.leader = Some("ghost".into());
    assert!(coordinator.restore(bad, 0).is_err());
}

#[test]
fn delete_groups_only_empty_ones() {
    let mut h = Harness::quick();
    h.stable_pair();
    h.coordinator.ensure_group("empty", h.now_ms);
    let results = h
        .coordinator
        .delete_groups(&[GROUP.into(), "empty".into(), "missing".into()], h.now_ms);
    assert!(matches!(
        results[0].1,
        Err(GroupError::NonEmptyGroup {
            state: "Stable",
            ..
        })
    ));
    assert_eq!(results[1].1, Ok(()));
    assert!(matches!(
        results[2].1,
        Err(GroupError::GroupIdNotFound { .. })
    ));
    let outputs = h.coordinator.take_outputs();
    assert_eq!(
        outputs,
        vec![Output::Tombstone {
            group_id: "empty".into()
        }]
    );
    assert!(h.coordinator.group_overview("empty").is_none());
    assert_eq!(
        h.coordinator.describe_group("empty").unwrap().state,
        GroupState::Dead
    );
}

#[test]
fn list_and_describe_groups() {
    let mut h = Harness::quick();
    h.stable_pair();
    h.coordinator.ensure_group("simple", h.now_ms);
    let all = h.coordinator.list_groups(&[]).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].group_id, GROUP);
    assert_eq!(all[0].protocol_type, "consumer");
    assert_eq!(all[1].protocol_type, "");
    let stable = h.coordinator.list_groups(&[GroupState::Stable]).unwrap();
    assert_eq!(stable.len(), 1);
    assert_eq!(stable[0].state.as_str(), "Stable");
    assert_eq!(GroupState::parse("stable"), Some(GroupState::Stable));
    let description = h.coordinator.describe_group(GROUP).unwrap();
    assert_eq!(description.protocol_type, "consumer");
    assert_eq!(description.members.len(), 2);
    assert_eq!(description.members[0].client_id, "a");
    assert_eq!(description.members[0].client_host, "/127.0.0.1");
    // Not Stable: no protocol, metadata or assignment shown.
    h.join_new("c");
    let description = h.coordinator.describe_group(GROUP).unwrap();
    assert_eq!(description.state, GroupState::PreparingRebalance);
    assert_eq!(description.protocol, "");
    assert!(description.members.iter().all(|m| m.assignment.is_empty()));
}

#[test]
fn request_validation() {
    let mut h = Harness::new(GroupConfig {
        initial_rebalance_delay_ms: 0,
        group_max_size: 2,
        ..GroupConfig::default()
    });
    let mut request = join_request("a", "");
    request.group_id = String::new();
    let t = h.join(request);
    assert!(matches!(
        h.join_response(t).unwrap().error,
        Some(GroupError::InvalidGroupId { .. })
    ));
    for session_timeout_ms in [5_999, 1_800_001] {
        let mut request = join_request("a", "");
        request.session_timeout_ms = session_timeout_ms;
        let t = h.join(request);
        assert_eq!(
            h.join_response(t).unwrap().error,
            Some(GroupError::InvalidSessionTimeout {
                session_timeout_ms,
                min_ms: 6_000,
                max_ms: 1_800_000
            })
        );
    }
    h.stable_pair();
    let t = h.join(join_request("c", ""));
    assert!(matches!(
        h.join_response(t).unwrap().error,
        Some(GroupError::GroupMaxSizeReached {
            group_max_size: 2,
            ..
        })
    ));
}

#[test]
fn offset_commit_validation() {
    let mut h = Harness::quick();
    let now = h.now_ms;
    // Simple consumer, no group yet: allowed, and the group now exists.
    assert_eq!(
        h.coordinator
            .validate_offset_commit("simple", "", -1, None, now),
        Ok(())
    );
    assert_eq!(
        h.coordinator.group_overview("simple").unwrap().state,
        GroupState::Empty
    );
    assert!(matches!(
        h.coordinator
            .validate_offset_commit("missing", "m", 3, None, now),
        Err(GroupError::GroupIdNotFound { .. })
    ));
    let (leader, follower, generation) = h.stable_pair();
    assert_eq!(
        h.coordinator
            .validate_offset_commit(GROUP, &leader, generation, None, now),
        Ok(())
    );
    assert!(matches!(
        h.coordinator
            .validate_offset_commit(GROUP, &follower, generation - 1, None, now),
        Err(GroupError::IllegalGeneration { .. })
    ));
    assert!(matches!(
        h.coordinator
            .validate_offset_commit(GROUP, "stranger", generation, None, now),
        Err(GroupError::UnknownMemberId { .. })
    ));
    // Simple-consumer commit to a group with members.
    assert!(matches!(
        h.coordinator
            .validate_offset_commit(GROUP, "", -1, None, now),
        Err(GroupError::UnknownMemberId { .. })
    ));
    // While the group awaits the assignment: REBALANCE_IN_PROGRESS.
    let (_c, tc) = h.join_new("c");
    let tl = h.join(join_request("a", &leader));
    let tf = h.join(join_request("b", &follower));
    let generation = h.join_response(tl).unwrap().generation_id;
    h.join_response(tf).unwrap();
    h.join_response(tc).unwrap();
    assert!(matches!(
        h.coordinator
            .validate_offset_commit(GROUP, &leader, generation, None, now),
        Err(GroupError::RebalanceInProgress { .. })
    ));
}

#[test]
fn txn_offset_commit_validation() {
    let mut h = Harness::quick();
    let now = h.now_ms;
    // A standalone transactional commit creates the group, Empty.
    assert_eq!(
        h.coordinator
            .validate_txn_offset_commit("simple", "", -1, None, now),
        Ok(())
    );
    assert_eq!(
        h.coordinator.group_overview("simple").unwrap().state,
        GroupState::Empty
    );
    // A member of a group that does not exist: unknown, and no group.
    assert!(matches!(
        h.coordinator
            .validate_txn_offset_commit("missing", "m", 3, None, now),
        Err(GroupError::UnknownMemberId { .. })
    ));
    assert!(h.coordinator.group_overview("missing").is_none());
    assert!(matches!(
        h.coordinator
            .validate_txn_offset_commit("", "", -1, None, now),
        Err(GroupError::InvalidGroupId { .. })
    ));
    let (leader, follower, generation) = h.stable_pair();
    let validate = |h: &mut Harness, member: &str, generation: i32| {
        h.coordinator
            .validate_txn_offset_commit(GROUP, member, generation, None, now)
    };
    assert_eq!(validate(&mut h, &leader, generation), Ok(()));
    assert_eq!(validate(&mut h, &follower, generation), Ok(()));
    assert!(matches!(
        validate(&mut h, &follower, generation - 1),
        Err(GroupError::IllegalGeneration { .. })
    ));
    assert!(matches!(
        validate(&mut h, "stranger", generation),
        Err(GroupError::UnknownMemberId { .. })
    ));
    // A member id without a generation is checked too.
    assert!(matches!(
        validate(&mut h, &leader, -1),
        Err(GroupError::IllegalGeneration { .. })
    ));
    // A producer older than KIP-447 (no member, no generation) commits to
    // a group with members, which OffsetCommit would refuse.
    assert_eq!(validate(&mut h, "", -1), Ok(()));
    assert!(matches!(
        h.coordinator
            .validate_offset_commit(GROUP, "", -1, None, now),
        Err(GroupError::UnknownMemberId { .. })
    ));
    // While the group awaits its assignment a current member still
    // commits transactionally (OffsetCommit: REBALANCE_IN_PROGRESS).
    let (_c, tc) = h.join_new("c");
    let tl = h.join(join_request("a", &leader));
    let tf = h.join(join_request("b", &follower));
    let generation = h.join_response(tl).unwrap().generation_id;
    h.join_response(tf).unwrap();
    h.join_response(tc).unwrap();
    assert_eq!(state(&h), GroupState::CompletingRebalance);
    assert_eq!(validate(&mut h, &leader, generation), Ok(()));
    assert!(matches!(
        h.coordinator
            .validate_offset_commit(GROUP, &leader, generation, None, now),
        Err(GroupError::RebalanceInProgress { .. })
    ));
}

#[test]
fn txn_offset_commit_waits_for_loading() {
    let mut coordinator = GroupCoordinator::new(GroupConfig::default(), 1);
    assert_eq!(
        coordinator.validate_txn_offset_commit(GROUP, "", -1, None, 0),
        Err(GroupError::CoordinatorLoadInProgress)
    );
    coordinator.finish_loading();
    assert_eq!(
        coordinator.validate_txn_offset_commit(GROUP, "", -1, None, 0),
        Ok(())
    );
}

#[test]
fn duplicate_join_answers_the_superseded_request() {
    let mut h = Harness::quick();
    let (leader, follower, _generation) = h.stable_pair();
    let first = h.join(join_request("a", &leader));
    let second = h.join(join_request("a", &leader));
    assert!(matches!(
        h.join_response(first).unwrap().error,
        Some(GroupError::RebalanceInProgress { .. })
    ));
    let tf = h.join(join_request("b", &follower));
    assert_eq!(h.join_response(second).unwrap().error, None);
    assert!(h.join_response(tf).is_some());
}
