//! DescribeLogDirs: each log directory of this broker, the partitions it
//! holds (all, or those asked for) with their size on disk, and the file
//! system's size and free space (v4). Kafka's rules: DESCRIBE on the
//! cluster is needed (CLUSTER_AUTHORIZATION_FAILED, no directories); a
//! directory whose file system cannot be read is KAFKA_STORAGE_ERROR;
//! the offset lag of a replica that is not moving between directories
//! is its high watermark past its log end, at least 0.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{
    ApiKey, DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::{Body, HandlerError, Request, encode};
use crate::authorizer::{Access, AclOperation};
use crate::broker::Broker;

/// A directory's partitions by topic: (partition, size, offset lag).
type TopicsInDir = BTreeMap<String, Vec<(i32, i64, i64)>>;

pub(crate) fn answer(
    broker: &Broker,
    describe: DescribeLogDirsRequest,
    request: &Request,
) -> Result<Body, HandlerError> {
    let (session, version) = (&*request.session, request.version());
    if !Access::new(broker, session).allows_cluster(AclOperation::Describe) {
        return encode(
            ApiKey::DescribeLogDirs,
            version,
            &DescribeLogDirsResponse::default()
                .with_error_code(ResponseError::ClusterAuthorizationFailed.code()),
        );
    }
    // None: every partition.
    let wanted: Option<BTreeSet<(String, i32)>> = describe.topics.map(|topics| {
        topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic.to_string(), *p)))
            .collect()
    });
    let mut by_dir: BTreeMap<std::path::PathBuf, TopicsInDir> = broker
        .logs()
        .log_dirs()
        .iter()
        .map(|dir| (dir.clone(), BTreeMap::new()))
        .collect();
    for partition in broker.logs().partitions() {
        let tp = partition.topic_partition();
        if wanted
            .as_ref()
            .is_some_and(|wanted| !wanted.contains(&(tp.topic.clone(), tp.partition)))
        {
            continue;
        }
        let Some(dir) = partition.dir().parent() else {
            continue;
        };
        let Some(topics) = by_dir.get_mut(dir) else {
            continue;
        };
        let size = i64::try_from(partition.log().size_bytes()).unwrap_or(i64::MAX);
        let lag = (partition.high_watermark().value() - partition.log_end_offset().value()).max(0);
        topics
            .entry(tp.topic.clone())
            .or_default()
            .push((tp.partition, size, lag));
    }
    let results = by_dir
        .into_iter()
        .map(|(dir, topics)| {
            let result = DescribeLogDirsResult::default()
                .with_log_dir(StrBytes::from_string(dir.display().to_string()));
            let (total, usable) = match rill_storage::space_of(&dir) {
                Ok((total, usable)) => (total, usable),
                Err(error) => {
                    tracing::warn!(dir = %dir.display(), %error, "cannot read the log dir's file system");
                    return result.with_error_code(ResponseError::KafkaStorageError.code());
                }
            };
            let mut result = result.with_topics(
                topics
                    .into_iter()
                    .map(|(name, mut partitions)| {
                        partitions.sort_unstable();
                        DescribeLogDirsTopic::default()
                            .with_name(TopicName(StrBytes::from_string(name)))
                            .with_partitions(
                                partitions
                                    .into_iter()
                                    .map(|(index, size, lag)| {
                                        DescribeLogDirsPartition::default()
                                            .with_partition_index(index)
                                            .with_partition_size(size)
                                            .with_offset_lag(lag)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
            if version >= 4 {
                result = result
                    .with_total_bytes(i64::try_from(total).unwrap_or(i64::MAX))
                    .with_usable_bytes(i64::try_from(usable).unwrap_or(i64::MAX));
            }
            result
        })
        .collect();
    encode(
        ApiKey::DescribeLogDirs,
        version,
        &DescribeLogDirsResponse::default().with_results(results),
    )
}
