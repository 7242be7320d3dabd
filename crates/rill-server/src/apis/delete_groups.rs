//! DeleteGroups: only empty groups (NON_EMPTY_GROUP otherwise). A classic
//! group's offsets and metadata become tombstones in `__consumer_offsets`,
//! and so do a consumer group's (KIP-848) offsets and records (the answer
//! waits until they are acknowledged);
//! a share group's state is reset to none (see `shares/admin.rs`).

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{ApiKey, DeleteGroupsRequest, DeleteGroupsResponse};

use super::{Pending, Request, encode, ready};
use crate::authorizer::{Access, AclOperation};
use crate::broker::Broker;
use crate::error_code;
use crate::groups::{ConsumerRefusal, acknowledged};
use crate::shares::NewStart;

pub(crate) fn handle(broker: &Arc<Broker>, request: &Request) -> Pending {
    let version = request.version();
    let delete: DeleteGroupsRequest = match request.decode() {
        Ok(delete) => delete,
        Err(error) => return ready(Err(error)),
    };
    let ids: Vec<String> = delete.groups_names.iter().map(|g| g.to_string()).collect();
    // Each group at its own coordinator: the ones coordinated elsewhere
    // (or nowhere yet) get that coordinator error, the rest are deleted.
    // A group the principal may not DELETE answers
    // GROUP_AUTHORIZATION_FAILED, like one coordinated elsewhere.
    let access = Access::new(broker, &request.session);
    let coordinated = |id: &str| {
        access
            .group(AclOperation::Delete, id)
            .and_then(|()| broker.groups_for(id).map(drop))
    };
    let (here, elsewhere): (Vec<&String>, Vec<&String>) =
        ids.iter().partition(|id| coordinated(id).is_ok());
    let shares = broker.shares();
    let (share_groups, here): (Vec<&String>, Vec<&String>) = here
        .into_iter()
        .partition(|id| shares.knows_group(broker, id));
    let mut deleted: std::collections::HashMap<String, Result<(), ResponseError>> = elsewhere
        .into_iter()
        .map(|id| (id.clone(), coordinated(id)))
        .collect();
    // Consumer groups (KIP-848) first: their tombstones are appended now
    // and the answer waits for them; the rest are classic groups.
    let mut consumer_deletions = Vec::new();
    if let Some(groups) = broker.groups().current() {
        let mut classic = Vec::new();
        for id in here {
            match groups.delete_consumer_group(id) {
                None => classic.push(id.clone()),
                Some(Ok(persisted)) => consumer_deletions.push((id.clone(), persisted)),
                Some(Err(ConsumerRefusal::Group(error))) => {
                    deleted.insert(id.clone(), Err(error_code::for_consumer_group(&error)));
                }
                Some(Err(ConsumerRefusal::Persist(message))) => {
                    tracing::warn!(group = %id, %message, "cannot persist a consumer group's deletion");
                    deleted.insert(id.clone(), Err(ResponseError::CoordinatorNotAvailable));
                }
            }
        }
        for (id, result) in groups.with_coordinator(|c, _, now| c.delete_groups(&classic, now)) {
            deleted.insert(id, result.map_err(|e| error_code::for_group(&e)));
        }
    }
    let share_groups: Vec<(String, Vec<NewStart>)> = share_groups
        .into_iter()
        .filter_map(|id| {
            if shares.has_members(id) {
                deleted.insert(id.clone(), Err(ResponseError::NonEmptyGroup));
                return None;
            }
            let none = shares
                .state_topics(broker, id)
                .into_iter()
                .flat_map(|(_, topic, count)| (0..count).map(move |p| (topic, p, None)))
                .collect();
            Some((id.clone(), none))
        })
        .collect();
    let broker = Arc::clone(broker);
    Box::pin(async move {
        for (id, persisted) in consumer_deletions {
            let result = if acknowledged(broker.groups().deps(), persisted).await {
                Ok(())
            } else {
                Err(ResponseError::CoordinatorNotAvailable)
            };
            deleted.insert(id, result);
        }
        for (id, none) in share_groups {
            let result = broker
                .shares()
                .reset(&broker, &id, &none, (Vec::new(), true))
                .await
                .map_err(|e| e.code());
            deleted.insert(id, result);
        }
        let results = delete
            .groups_names
            .into_iter()
            .map(|group_id| {
                let result = deleted
                    .remove(group_id.as_str())
                    .unwrap_or(Err(ResponseError::CoordinatorLoadInProgress));
                DeletableGroupResult::default()
                    .with_group_id(group_id)
                    .with_error_code(result.err().map_or(0, |e| e.code()))
            })
            .collect();
        encode(
            ApiKey::DeleteGroups,
            version,
            &DeleteGroupsResponse::default().with_results(results),
        )
        .map(Some)
    })
}
