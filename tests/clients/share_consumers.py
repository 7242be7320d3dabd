"""Share consumers (KIP-932) of confluent-kafka — librdkafka's share
consumer — against Rill, for tests/share_groups.rs.

    share_consumers.py BOOTSTRAP configure GROUP KEY=VALUE...
    share_consumers.py BOOTSTRAP produce TOPIC COUNT [PREFIX]
    share_consumers.py BOOTSTRAP produce-txn TOPIC COUNT PREFIX commit|abort
    share_consumers.py BOOTSTRAP work GROUP TOPIC COUNT CONSUMERS
    share_consumers.py BOOTSTRAP ack GROUP TOPIC COUNT TYPE [WAIT_S]
    share_consumers.py BOOTSTRAP until GROUP TOPIC MARKER [TYPE]
    share_consumers.py BOOTSTRAP hold GROUP TOPIC COUNT
    share_consumers.py BOOTSTRAP dead-letters TOPIC COUNT

Each prints one JSON object on stdout (`hold` prints it, then waits to be
killed). Every wait is bounded: a step that does not happen in time fails
the script.
"""

import json
import sys
import time

import confluent_kafka as ck
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

# How long any one step may take.
STEP_S = 60
ACKS = {
    "accept": ck.AcknowledgeType.ACCEPT,
    "release": ck.AcknowledgeType.RELEASE,
    "reject": ck.AcknowledgeType.REJECT,
}


def share_consumer(bootstrap, group, topic, **extra):
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "share.acknowledgement.mode": "explicit",
        "log_level": 3,
    }
    conf.update(extra)
    consumer = ck.ShareConsumer(conf)
    consumer.subscribe([topic])
    return consumer


def records(messages):
    """The messages that are records (errors are reported, not returned)."""
    out = []
    for message in messages:
        if message.error():
            print(f"poll error: {message.error()}", file=sys.stderr)
            continue
        out.append(message)
    return out


def configure(bootstrap, group, *pairs):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    entries = [
        ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
        for key, value in (pair.split("=", 1) for pair in pairs)
    ]
    resource = ConfigResource(ResourceType.GROUP, group, incremental_configs=entries)
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=STEP_S)
    print(json.dumps({"configured": len(entries)}))


def produce(bootstrap, topic, count, prefix="m"):
    producer = ck.Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i in range(int(count)):
        producer.produce(topic, value=f"{prefix}{i}".encode())
    left = producer.flush(STEP_S)
    if left:
        sys.exit(f"{left} messages not delivered")
    print(json.dumps({"produced": int(count)}))


def produce_txn(bootstrap, topic, count, prefix, outcome):
    """COUNT records in one transaction, committed or aborted."""
    producer = ck.Producer(
        {"bootstrap.servers": bootstrap, "transactional.id": f"share-test-{prefix}"}
    )
    producer.init_transactions(STEP_S)
    producer.begin_transaction()
    for i in range(int(count)):
        producer.produce(topic, value=f"{prefix}{i}".encode())
    # Written before the outcome: an abort would drop unsent records.
    if producer.flush(STEP_S):
        sys.exit("records of the transaction not delivered")
    if outcome == "commit":
        producer.commit_transaction(STEP_S)
    else:
        producer.abort_transaction(STEP_S)
    print(json.dumps({outcome: int(count)}))


def work(bootstrap, group, topic, count, consumers):
    """CONSUMERS share consumers, polling in turn, accept COUNT records."""
    count = int(count)
    members = [
        share_consumer(bootstrap, group, topic, **{"max.poll.records": 10})
        for _ in range(int(consumers))
    ]
    received = [[] for _ in members]
    deadline = time.time() + STEP_S
    while sum(map(len, received)) < count:
        if time.time() > deadline:
            sys.exit(f"only {sum(map(len, received))} of {count} records came")
        for i, member in enumerate(members):
            got = records(member.poll(0.1))
            for message in got:
                received[i].append(message.offset())
                member.acknowledge(message)
            if got:
                member.commit_sync(STEP_S)
    for member in members:
        member.close()
    offsets = [o for r in received for o in r]
    print(
        json.dumps(
            {
                "per_consumer": [len(r) for r in received],
                "distinct": len(set(offsets)),
                "total": len(offsets),
            }
        )
    )


def ack(bootstrap, group, topic, count, ack_type, wait_s=STEP_S):
    """Takes COUNT records, within WAIT_S seconds, and acknowledges each
    with TYPE."""
    count = int(count)
    member = share_consumer(bootstrap, group, topic, **{"max.poll.records": count})
    taken = []
    deadline = time.time() + float(wait_s)
    while len(taken) < count:
        if time.time() > deadline:
            sys.exit(f"only {len(taken)} of {count} records came")
        for message in records(member.poll(0.2)):
            taken.append((message.offset(), message.delivery_count()))
            member.acknowledge(message, ACKS[ack_type])
        member.commit_sync(STEP_S)
    member.close()
    print(json.dumps({"offsets": [o for o, _ in taken], "deliveries": [d for _, d in taken]}))


def until(bootstrap, group, topic, marker, ack_type="accept"):
    """Acknowledges records with TYPE until one whose value is MARKER,
    which it accepts; reports the others."""
    member = share_consumer(bootstrap, group, topic)
    seen = []
    deadline = time.time() + STEP_S
    done = False
    while not done:
        if time.time() > deadline:
            sys.exit(f"no {marker} in time; saw {seen}")
        for message in records(member.poll(0.2)):
            if message.value().decode() == marker:
                member.acknowledge(message)
                done = True
            else:
                member.acknowledge(message, ACKS[ack_type])
                seen.append(
                    {
                        "offset": message.offset(),
                        "deliveries": message.delivery_count(),
                        "value": message.value().decode(),
                    }
                )
        member.commit_sync(STEP_S)
    member.close()
    print(json.dumps({"before_marker": seen}))


def hold(bootstrap, group, topic, count):
    """Takes COUNT records, acknowledges none, says which, and waits to be
    killed."""
    count = int(count)
    member = share_consumer(bootstrap, group, topic, **{"max.poll.records": count})
    taken = []
    deadline = time.time() + STEP_S
    while len(taken) < count:
        if time.time() > deadline:
            sys.exit(f"only {len(taken)} of {count} records came")
        taken.extend(m.offset() for m in records(member.poll(0.2)))
    print(json.dumps({"held": taken}), flush=True)
    time.sleep(STEP_S)
    sys.exit("hold was not killed")


def dead_letters(bootstrap, topic, count):
    """Reads COUNT records of TOPIC (every partition, from the start) with a
    classic consumer: each one's partition, key, value and headers; and how
    many records the topic holds then, which shows any written twice."""
    count = int(count)
    consumer = ck.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"dead-letter-reader-{time.time()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "topic.metadata.refresh.interval.ms": 500,
            "log_level": 3,
        }
    )
    consumer.subscribe([topic])
    out = []
    deadline = time.time() + STEP_S
    while len(out) < count:
        if time.time() > deadline:
            sys.exit(f"only {len(out)} of {count} dead letters came")
        message = consumer.poll(0.2)
        if message is None:
            continue
        if message.error():
            print(f"poll error: {message.error()}", file=sys.stderr)
            continue
        decode = lambda b: None if b is None else b.decode()
        out.append(
            {
                "partition": message.partition(),
                "key": decode(message.key()),
                "value": decode(message.value()),
                "headers": {k: decode(v) for k, v in (message.headers() or [])},
            }
        )
    held = 0
    for assigned in consumer.assignment():
        low, high = consumer.get_watermark_offsets(assigned, timeout=STEP_S)
        held += high - low
    consumer.close()
    print(json.dumps({"records": out, "held": held}))


def main():
    bootstrap, command, *args = sys.argv[1:]
    commands = {
        "configure": configure,
        "produce": produce,
        "produce-txn": produce_txn,
        "work": work,
        "ack": ack,
        "until": until,
        "hold": hold,
        "dead-letters": dead_letters,
    }
    commands[command](bootstrap, *args)


if __name__ == "__main__":
    main()
