"""Parses a /metrics body (stdin) with the Prometheus project's own
parsers — `text` for the text format 0.0.4, `openmetrics` for OpenMetrics
1.0 (strict: it refuses a body without `# EOF`) — and prints each sample
as a JSON line: [name, {labels}, value]. tests/http.rs asserts on them."""

import json
import sys

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families as text_families

body = sys.stdin.read()
parse = {"text": text_families, "openmetrics": openmetrics_families}[sys.argv[1]]
for family in parse(body):
    for sample in family.samples:
        print(json.dumps([sample.name, sample.labels, sample.value]))
