"""Produces one message with kafka-python and reads it back, with the
security settings given; prints the value read, or exits non-zero with
kafka-python's error.

    python kafka_python_round_trip.py BOOTSTRAP TOPIC VALUE [KEY=VALUE ...]

KEY=VALUE pairs are kafka-python settings (security_protocol, ssl_cafile,
sasl_mechanism, sasl_plain_username, sasl_plain_password; a number is an
int, as bootstrap_timeout_ms).
"""

import sys

from kafka import KafkaConsumer, KafkaProducer, TopicPartition


def main():
    bootstrap, topic, value = sys.argv[1:4]
    settings = {key: int(value) if value.isdigit() else value
                for key, value in (arg.split("=", 1) for arg in sys.argv[4:])}
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **settings)
    metadata = producer.send(topic, value.encode(), partition=0).get(timeout=30)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=30000, **settings)
    partition = TopicPartition(topic, 0)
    consumer.assign([partition])
    consumer.seek(partition, metadata.offset)
    for message in consumer:
        print(message.value.decode())
        return


if __name__ == "__main__":
    main()
