//! ListGroups: every group this broker coordinates, filtered by state
//! (v4+) and type (v5+: "classic" groups, "consumer" groups of KIP-848
//! and "share" groups, KIP-932).

use std::sync::Arc;

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{ApiKey, GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;
use rill_group::GroupState;

use super::{Body, HandlerError, Request, encode};
use crate::authorizer::{Access, AclOperation, ResourceType};
use crate::broker::Broker;
use crate::error_code;

pub(crate) fn answer(broker: &Arc<Broker>, request: &Request) -> Result<Body, HandlerError> {
    let version = request.version();
    let list: ListGroupsRequest = request.decode()?;
    let Some(groups) = broker.groups().current() else {
        // A broker leading no offsets partition has no groups.
        return encode(ApiKey::ListGroups, version, &ListGroupsResponse::default());
    };
    // An unknown state matches nothing, as in Kafka.
    let states: Vec<GroupState> = list
        .states_filter
        .iter()
        .filter_map(|s| GroupState::parse(s))
        .collect();
    let unknown_state = states.len() < list.states_filter.len();
    let wants = |kind: &str| {
        list.types_filter.is_empty()
            || list
                .types_filter
                .iter()
                .any(|t| t.eq_ignore_ascii_case(kind))
    };
    let only_other_types = !wants("classic");
    // DESCRIBE on the cluster lists every group; else those the
    // principal may DESCRIBE.
    let access = Access::new(broker, &request.session);
    let every = access.allows_cluster(AclOperation::Describe);
    let listed = groups
        .with_coordinator(|c, _, _| c.list_groups(&states))
        .map(|listings| {
            listings
                .into_iter()
                .filter(|g| {
                    every || access.allows(AclOperation::Describe, ResourceType::Group, &g.group_id)
                })
                .collect::<Vec<_>>()
        });
    let response = match listed {
        Err(error) => {
            ListGroupsResponse::default().with_error_code(error_code::for_group(&error).code())
        }
        Ok(_) if (unknown_state && states.is_empty()) || only_other_types => {
            ListGroupsResponse::default()
        }
        Ok(listings) => ListGroupsResponse::default().with_groups(
            listings
                .into_iter()
                .map(|g| {
                    let mut listed = ListedGroup::default()
                        .with_group_id(GroupId(StrBytes::from_string(g.group_id)))
                        .with_protocol_type(StrBytes::from_string(g.protocol_type));
                    if version >= 4 {
                        listed =
                            listed.with_group_state(StrBytes::from_static_str(g.state.as_str()));
                    }
                    if version >= 5 {
                        listed = listed.with_group_type(StrBytes::from_static_str("classic"));
                    }
                    listed
                })
                .collect(),
        ),
    };
    let mut response = response;
    if response.error_code == 0 && wants("share") {
        let shares = broker
            .shares()
            .list(broker)
            .into_iter()
            .filter(|(id, state)| {
                broker.groups_for(id).is_ok()
                    && (list.states_filter.is_empty()
                        || list
                            .states_filter
                            .iter()
                            .any(|s| s.eq_ignore_ascii_case(state)))
                    && (every || access.allows(AclOperation::Describe, ResourceType::Group, id))
            })
            .map(|(id, state)| {
                let mut listed = ListedGroup::default()
                    .with_group_id(GroupId(StrBytes::from_string(id)))
                    .with_protocol_type(StrBytes::from_static_str("share"));
                if version >= 4 {
                    listed = listed.with_group_state(StrBytes::from_static_str(state));
                }
                if version >= 5 {
                    listed = listed.with_group_type(StrBytes::from_static_str("share"));
                }
                listed
            });
        response.groups.extend(shares);
    }
    if response.error_code == 0 && wants("consumer") {
        let consumers = groups
            .with_consumer_groups(|c| c.list())
            .into_iter()
            .filter(|(id, state)| {
                (list.states_filter.is_empty()
                    || list
                        .states_filter
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(state.as_str())))
                    && (every || access.allows(AclOperation::Describe, ResourceType::Group, id))
            })
            .map(|(id, state)| {
                let mut listed = ListedGroup::default()
                    .with_group_id(GroupId(StrBytes::from_string(id)))
                    .with_protocol_type(StrBytes::from_static_str("consumer"));
                if version >= 4 {
                    listed = listed.with_group_state(StrBytes::from_static_str(state.as_str()));
                }
                if version >= 5 {
                    listed = listed.with_group_type(StrBytes::from_static_str("consumer"));
                }
                listed
            });
        response.groups.extend(consumers);
    }
    encode(ApiKey::ListGroups, version, &response)
}
