"""Lists the cluster's config resources with kafka-python's admin client
(ListConfigResources), of every type and of topics only, and prints both
answers as JSON.

    python kafka_python_config_resources.py BOOTSTRAP
"""

import json
import sys

from kafka.admin import KafkaAdminClient


def main():
    admin = KafkaAdminClient(bootstrap_servers=sys.argv[1])
    every = admin.list_config_resources()
    topics = admin.list_config_resources(["TOPIC"])
    print(json.dumps({"every": every, "topics": topics}))
    admin.close()


if __name__ == "__main__":
    main()
