//! A KIP-848 consumer group as ConsumerGroupDescribe tells it, asked of the
//! group's coordinator: `rill group describe` shows these groups, which
//! DescribeGroups (the classic protocol's) does not know.

use anyhow::Context;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::Assignment;
use kafka_protocol::messages::{ApiKey, ConsumerGroupDescribeRequest, GroupId};
use kafka_protocol::protocol::StrBytes;

use crate::client::ClientArgs;
use crate::connection::refusal;

/// One member: its epoch, and what it owns against what it is heading for.
#[derive(Debug)]
pub(crate) struct ConsumerMember {
    pub member_id: String,
    pub client_id: String,
    pub client_host: String,
    pub member_epoch: i32,
    /// (topic, partitions sorted), by topic.
    pub assignment: Vec<(String, Vec<i32>)>,
    pub target_assignment: Vec<(String, Vec<i32>)>,
}

/// A consumer group's state, epochs, assignor and members.
#[derive(Debug)]
pub(crate) struct ConsumerGroupView {
    pub state: String,
    pub epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: Vec<ConsumerMember>,
}

/// ConsumerGroupDescribe of `group`; `None` when it is not a consumer group
/// (GROUP_ID_NOT_FOUND) or the cluster does not offer the API.
pub(crate) fn describe(
    client: &ClientArgs,
    group: &str,
) -> anyhow::Result<Option<ConsumerGroupView>> {
    let mut coordinator = client.coordinator(0, group)?;
    let Some((_, newest)) = coordinator.versions_of(ApiKey::ConsumerGroupDescribe)? else {
        return Ok(None);
    };
    let request = ConsumerGroupDescribeRequest::default()
        .with_group_ids(vec![GroupId(StrBytes::from_string(group.to_owned()))]);
    let response = coordinator
        .call(newest.min(1), &request)
        .with_context(|| format!("cannot describe consumer group {group:?}"))?;
    let Some(described) = response.groups.into_iter().next() else {
        return Ok(None);
    };
    if described.error_code == ResponseError::GroupIdNotFound.code() {
        return Ok(None);
    }
    anyhow::ensure!(
        described.error_code == 0,
        "cannot describe consumer group {group:?}: {}",
        refusal(
            described.error_code,
            described.error_message.as_ref().map(|m| m.as_str())
        )
    );
    let mut members: Vec<ConsumerMember> = described
        .members
        .into_iter()
        .map(|m| ConsumerMember {
            member_id: m.member_id.to_string(),
            client_id: m.client_id.to_string(),
            client_host: m.client_host.to_string(),
            member_epoch: m.member_epoch,
            assignment: topics(m.assignment),
            target_assignment: topics(m.target_assignment),
        })
        .collect();
    members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
    Ok(Some(ConsumerGroupView {
        state: described.group_state.to_string(),
        epoch: described.group_epoch,
        assignment_epoch: described.assignment_epoch,
        assignor: described.assignor_name.to_string(),
        members,
    }))
}

fn topics(assignment: Assignment) -> Vec<(String, Vec<i32>)> {
    let mut topics: Vec<(String, Vec<i32>)> = assignment
        .topic_partitions
        .into_iter()
        .map(|t| {
            let mut partitions = t.partitions;
            partitions.sort_unstable();
            (t.topic_name.0.to_string(), partitions)
        })
        .collect();
    topics.sort();
    topics
}
