"""Moves partition 0 of TOPIC to REPLICAS with kafka-python's admin client
(AlterPartitionReassignments), lists the moves under way
(ListPartitionReassignments), cancels the move (null replicas), lists
again, and cancels once more; prints each step's answer as a JSON line.

    python kafka_python_reassignments.py BOOTSTRAP TOPIC 1,3
"""

import json
import sys

from kafka import TopicPartition
from kafka.admin import KafkaAdminClient


def errors(results):
    return {f"{tp.topic}-{tp.partition}": (e.__name__ if e else None) for tp, e in results.items()}


def listed(moves):
    return {f"{tp.topic}-{tp.partition}": move for tp, move in moves.items()}


def main():
    bootstrap, topic, replicas = sys.argv[1], sys.argv[2], sys.argv[3]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    tp = TopicPartition(topic, 0)
    target = [int(b) for b in replicas.split(",")]
    print(json.dumps({"move": errors(admin.alter_partition_reassignments({tp: target}))}))
    print(json.dumps({"moving": listed(admin.list_partition_reassignments())}))
    print(json.dumps({"named": listed(admin.list_partition_reassignments([tp]))}))
    print(json.dumps({"cancel": errors(admin.alter_partition_reassignments({tp: None}))}))
    print(json.dumps({"after": listed(admin.list_partition_reassignments())}))
    print(json.dumps({"again": errors(admin.alter_partition_reassignments({tp: None}))}))
    admin.close()


if __name__ == "__main__":
    main()
