//! DeleteGroups: only empty groups (NON_EMPTY_GROUP otherwise); their
//! offsets and metadata become tombstones in `__consumer_offsets`.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{ApiKey, DeleteGroupsRequest, DeleteGroupsResponse};

use super::{Body, HandlerError, Request, encode};
use crate::authorizer::{Access, AclOperation};
use crate::broker::Broker;
use crate::error_code;

pub(crate) fn answer(broker: &Arc<Broker>, request: &Request) -> Result<Body, HandlerError> {
    let version = request.version();
    let delete: DeleteGroupsRequest = request.decode()?;
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
    let mut deleted: std::collections::HashMap<String, Result<(), ResponseError>> = elsewhere
        .into_iter()
        .map(|id| (id.clone(), coordinated(id)))
        .collect();
    if let Some(groups) = broker.groups().current() {
        let here: Vec<String> = here.into_iter().cloned().collect();
        for (id, result) in groups.with_coordinator(|c, _, now| c.delete_groups(&here, now)) {
            deleted.insert(id, result.map_err(|e| error_code::for_group(&e)));
        }
    }
    let outcomes: Vec<(String, Result<(), ResponseError>)> = ids
        .iter()
        .map(|id| {
            let result = deleted
                .remove(id)
                .unwrap_or(Err(ResponseError::CoordinatorLoadInProgress));
            (id.clone(), result)
        })
        .collect();
    let results = delete
        .groups_names
        .into_iter()
        .zip(outcomes)
        .map(|(group_id, (_, result))| {
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
}
