//! A fake clock and client-side helpers for driving the group coordinator.

#![allow(dead_code)]

use bytes::Bytes;
use rill_group::{
    GroupConfig, GroupCoordinator, GroupError, HeartbeatRequest, JoinGroupRequest,
    JoinGroupResponse, JoinProtocol, LeaveGroupRequest, LeavingMember, Output, RequestToken,
    SyncGroupRequest, SyncGroupResponse,
};

pub const GROUP: &str = "g";
pub const SESSION_MS: i32 = 10_000;
pub const REBALANCE_MS: i32 = 30_000;

/// A coordinator with a fake clock, past loading, collecting outputs.
pub struct Harness {
    pub coordinator: GroupCoordinator,
    pub now_ms: i64,
    next_token: RequestToken,
    pub outputs: Vec<Output>,
}

impl Harness {
    pub fn new(config: GroupConfig) -> Self {
        let mut coordinator = GroupCoordinator::new(config, 42);
        coordinator.finish_loading();
        Self {
            coordinator,
            now_ms: 1_000_000,
            next_token: 1,
            outputs: Vec::new(),
        }
    }

    /// No initial delay, Kafka's other defaults.
    pub fn quick() -> Self {
        Self::new(GroupConfig {
            initial_rebalance_delay_ms: 0,
            ..GroupConfig::default()
        })
    }

    fn token(&mut self) -> RequestToken {
        let token = self.next_token;
        self.next_token += 1;
        token
    }

    fn collect(&mut self) {
        let outputs = self.coordinator.take_outputs();
        self.outputs.extend(outputs);
    }

    pub fn join(&mut self, request: JoinGroupRequest) -> RequestToken {
        let token = self.token();
        self.coordinator.join_group(token, request, self.now_ms);
        self.collect();
        token
    }

    pub fn sync(&mut self, request: SyncGroupRequest) -> RequestToken {
        let token = self.token();
        self.coordinator.sync_group(token, request, self.now_ms);
        self.collect();
        token
    }

    pub fn heartbeat(&mut self, member_id: &str, generation_id: i32) -> Result<(), GroupError> {
        let result = self.coordinator.heartbeat(
            &HeartbeatRequest {
                group_id: GROUP.into(),
                member_id: member_id.into(),
                generation_id,
                group_instance_id: None,
            },
            self.now_ms,
        );
        self.collect();
        result
    }

    pub fn leave(&mut self, member_id: &str) -> Option<GroupError> {
        let results = self
            .coordinator
            .leave_group(
                &LeaveGroupRequest {
                    group_id: GROUP.into(),
                    members: vec![LeavingMember {
                        member_id: member_id.into(),
                        group_instance_id: None,
                    }],
                },
                self.now_ms,
            )
            .unwrap();
        self.collect();
        results.into_iter().next().unwrap().error
    }

    /// Moves the clock and fires due timers.
    pub fn advance(&mut self, ms: i64) {
        self.now_ms += ms;
        self.coordinator.tick(self.now_ms);
        self.collect();
        if let Some(deadline) = self.coordinator.next_deadline() {
            assert!(deadline > self.now_ms, "tick left a due timer");
        }
    }

    /// Takes the JoinGroup answer for `token`, if it came.
    pub fn join_response(&mut self, token: RequestToken) -> Option<JoinGroupResponse> {
        let index = self.outputs.iter().position(
            |output| matches!(output, Output::JoinResponse { token: t, .. } if *t == token),
        )?;
        match self.outputs.remove(index) {
            Output::JoinResponse { response, .. } => Some(response),
            _ => unreachable!(),
        }
    }

    /// Takes the SyncGroup answer for `token`, if it came.
    pub fn sync_response(&mut self, token: RequestToken) -> Option<SyncGroupResponse> {
        let index = self.outputs.iter().position(
            |output| matches!(output, Output::SyncResponse { token: t, .. } if *t == token),
        )?;
        match self.outputs.remove(index) {
            Output::SyncResponse { response, .. } => Some(response),
            _ => unreachable!(),
        }
    }

    /// Takes every Persist output.
    pub fn persisted(&mut self) -> Vec<rill_group::GroupMetadataSnapshot> {
        let mut taken = Vec::new();
        self.outputs.retain(|output| match output {
            Output::Persist(snapshot) => {
                taken.push(snapshot.clone());
                false
            }
            _ => true,
        });
        taken
    }

    /// A dynamic member's first join (v4+): MEMBER_ID_REQUIRED, then the
    /// rejoin with the given id. Returns the id and the rejoin's token.
    pub fn join_new(&mut self, client_id: &str) -> (String, RequestToken) {
        let first = self.join(join_request(client_id, ""));
        let response = self
            .join_response(first)
            .expect("MEMBER_ID_REQUIRED at once");
        let member_id = match response.error {
            Some(GroupError::MemberIdRequired { member_id }) => member_id,
            other => panic!("expected MEMBER_ID_REQUIRED, got {other:?}"),
        };
        assert_eq!(response.member_id, member_id);
        let token = self.join(join_request(client_id, &member_id));
        (member_id, token)
    }

    /// Two members joined and synced: (leader, follower, generation).
    pub fn stable_pair(&mut self) -> (String, String, i32) {
        let (a, ta) = self.join_new("a");
        let (b, tb) = self.join_new("b");
        self.advance(0);
        let ra = self.join_response(ta).unwrap();
        let rb = self.join_response(tb).unwrap();
        assert_eq!(ra.error, None);
        assert_eq!(rb.error, None);
        let generation = ra.generation_id;
        let (leader, follower) = if ra.leader == a { (a, b) } else { (b, a) };
        let tl = self.sync(sync_request(
            &leader,
            generation,
            vec![(leader.clone(), "L"), (follower.clone(), "F")],
        ));
        let tf = self.sync(sync_request(&follower, generation, vec![]));
        assert_eq!(self.sync_response(tl).unwrap().assignment, Bytes::from("L"));
        assert_eq!(self.sync_response(tf).unwrap().assignment, Bytes::from("F"));
        self.persisted();
        (leader, follower, generation)
    }
}

pub fn protocol(name: &str, metadata: &str) -> JoinProtocol {
    JoinProtocol {
        name: name.into(),
        metadata: Bytes::from(metadata.to_owned()),
    }
}

/// A v5+ consumer JoinGroup supporting "range" with metadata "m-CLIENT".
pub fn join_request(client_id: &str, member_id: &str) -> JoinGroupRequest {
    JoinGroupRequest {
        group_id: GROUP.into(),
        member_id: member_id.into(),
        group_instance_id: None,
        client_id: client_id.into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        protocol_type: "consumer".into(),
        protocols: vec![protocol("range", &format!("m-{client_id}"))],
        require_known_member_id: true,
        supports_skip_assignment: false,
    }
}

pub fn sync_request(
    member_id: &str,
    generation_id: i32,
    assignments: Vec<(String, &str)>,
) -> SyncGroupRequest {
    SyncGroupRequest {
        group_id: GROUP.into(),
        member_id: member_id.into(),
        generation_id,
        group_instance_id: None,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("range".into()),
        assignments: assignments
            .into_iter()
            .map(|(member, assignment)| (member, Bytes::from(assignment.to_owned())))
            .collect(),
    }
}
