//! Who waits for a partition to move: long polls (Fetch), acks=all
//! produces and group answers waiting for the high watermark. Whoever moves
//! a partition (an acknowledged append, a new high watermark) notifies it;
//! each waiter is woken once per registration.
//!
//! Thread-safe: one mutex over the map, held for map updates only.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use rill_partition::TopicPartition;
use tokio::sync::Notify;

/// See the module doc.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    by_partition: Mutex<HashMap<TopicPartition, Vec<Weak<Notify>>>>,
}

impl Waiters {
    /// Registers `waiter` to be notified at the partition's next move.
    /// Dead waiters are pruned as others register.
    pub(crate) fn register(&self, topic_partition: &TopicPartition, waiter: &Arc<Notify>) {
        let mut waiters = self.by_partition.lock();
        let list = waiters.entry(topic_partition.clone()).or_default();
        list.retain(|w| w.strong_count() > 0 && !w.ptr_eq(&Arc::downgrade(waiter)));
        list.push(Arc::downgrade(waiter));
    }

    /// Wakes everyone waiting on the partition.
    pub(crate) fn notify(&self, topic_partition: &TopicPartition) {
        let woken = self
            .by_partition
            .lock()
            .get_mut(topic_partition)
            .map(std::mem::take)
            .unwrap_or_default();
        for waiter in woken.iter().filter_map(Weak::upgrade) {
            waiter.notify_one();
        }
    }

    /// Forgets a partition that is gone (its waiters time out).
    pub(crate) fn remove(&self, topic_partition: &TopicPartition) {
        self.by_partition.lock().remove(topic_partition);
    }
}
