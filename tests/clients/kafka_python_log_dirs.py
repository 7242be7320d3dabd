"""Asks every broker for its log directories with kafka-python's admin
client (DescribeLogDirs) and prints the answer as JSON.

    python kafka_python_log_dirs.py BOOTSTRAP
"""

import json
import sys

from kafka.admin import KafkaAdminClient


def main():
    admin = KafkaAdminClient(bootstrap_servers=sys.argv[1])
    print(json.dumps(admin.describe_log_dirs()))
    admin.close()


if __name__ == "__main__":
    main()
