"""Alters and describes a group's configs (config resource GROUP) with
confluent-kafka's admin client, which is librdkafka: Rill's own client
family, here through its IncrementalAlterConfigs, which the rdkafka crate
does not have, and its config source GROUP_CONFIG, which the crate cannot
read. Prints the answer as JSON.

    python librdkafka_group_configs.py BOOTSTRAP alter GROUP [--validate-only] OP:NAME[=VALUE]...
    python librdkafka_group_configs.py BOOTSTRAP describe GROUP

Further librdkafka properties (a SASL login) come as a JSON object on
stdin. Each prints {"error": null} or {"error": {"name": ERROR, "message":
TEXT}}; OP is SET, DELETE, APPEND or SUBTRACT; describe adds "configs": {NAME: {"value",
"source", "synonyms": [[NAME, VALUE, SOURCE]...]}}, sources by Kafka's
names.
"""

import json
import sys

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    ResourceType,
)

TIMEOUT_S = 30


def alter(admin, group, args):
    validate_only = "--validate-only" in args
    entries = []
    for arg in args:
        if arg == "--validate-only":
            continue
        op, _, setting = arg.partition(":")
        name, _, value = setting.partition("=")
        entries.append(
            ConfigEntry(
                name,
                None if op == "DELETE" else value,
                incremental_operation=AlterConfigOpType[op],
            )
        )
    resource = ConfigResource(ResourceType.GROUP, group, incremental_configs=entries)
    futures = admin.incremental_alter_configs(
        [resource], validate_only=validate_only, request_timeout=TIMEOUT_S
    )
    try:
        for future in futures.values():
            future.result()
    except KafkaException as e:
        return refusal(e)
    return {"error": None}


def refusal(exception):
    error = exception.args[0]
    return {"error": {"name": error.name(), "message": error.str()}}


def source(code):
    # confluent-kafka hands the source over as librdkafka's number.
    return ConfigSource(int(code)).name


def describe(admin, group):
    resource = ConfigResource(ResourceType.GROUP, group)
    futures = admin.describe_configs([resource], request_timeout=TIMEOUT_S)
    described = {}
    for future in futures.values():
        try:
            entries = future.result()
        except KafkaException as e:
            return refusal(e)
        for name, entry in entries.items():
            described[name] = {
                "value": entry.value,
                "source": source(entry.source),
                "synonyms": [
                    [s.name, s.value, source(s.source)] for s in entry.synonyms.values()
                ],
            }
    return {"error": None, "configs": described}


def main():
    bootstrap, command, group, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    config = {"bootstrap.servers": bootstrap, "broker.address.family": "v4"}
    config.update(json.loads(sys.stdin.read() or "{}"))
    admin = AdminClient(config)
    if command == "alter":
        print(json.dumps(alter(admin, group, args)))
    elif command == "describe":
        print(json.dumps(describe(admin, group)))
    else:
        sys.exit(f"unknown command {command!r}")


if __name__ == "__main__":
    main()
