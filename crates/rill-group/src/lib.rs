//! rill-group owns consumer-group coordination as Kafka's classic protocol
//! defines it: the group state machine (members, generations, rebalances,
//! static membership, timeouts), kept free of I/O so it can be tested by
//! itself, and the records that make committed offsets and group metadata
//! durable in the internal compacted topic `__consumer_offsets` (Kafka's
//! own key and value schemas). The network front end drives it: it feeds
//! requests and the clock in, delivers the responses it emits, and appends
//! the records it asks to persist.
