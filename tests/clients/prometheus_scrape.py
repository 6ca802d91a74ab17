"""Scrapes a Prometheus endpoint and parses the exposition with the official
Python client's parser (prometheus-client from PyPI), an implementation
independent of kefu's exporter. Prints {"sample name": [[labels, value], ...]}.

usage: prometheus_scrape.py URL
"""

import json
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def main():
    with urllib.request.urlopen(sys.argv[1], timeout=30) as response:
        assert response.status == 200, response.status
        kind = response.headers.get("Content-Type", "")
        assert kind.startswith("text/plain"), kind
        text = response.read().decode("utf-8")
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append([sample.labels, sample.value])
    json.dump(samples, sys.stdout, ensure_ascii=False)


main()
