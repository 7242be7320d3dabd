"""Describes the metadata quorum with kafka-python's admin client
(DescribeQuorum) and prints the answer as JSON.

    python kafka_python_quorum.py BOOTSTRAP
"""

import json
import sys

from kafka.admin import KafkaAdminClient


def main():
    admin = KafkaAdminClient(bootstrap_servers=sys.argv[1])
    print(json.dumps(admin.describe_metadata_quorum(), default=str))
    admin.close()


if __name__ == "__main__":
    main()
