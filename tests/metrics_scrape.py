"""Reading the service's /metrics in tests and benchmarks: one parser for all of them."""

from __future__ import annotations

import requests
from prometheus_client.parser import text_string_to_metric_families


class Samples:
    """One scrape: every sample by name and labels. A sample that is absent reads as 0."""

    def __init__(self, text: str) -> None:
        self._samples: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self._samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples called ``name`` whose labels include ``labels``."""
        return sum(
            value
            for sample_labels, value in self._samples.get(name, [])
            if all(sample_labels.get(key) == wanted for key, wanted in labels.items())
        )

    __call__ = value

    def by_label(self, name: str, *keys: str) -> dict[tuple[str, ...], float]:
        """The samples called ``name``, keyed by the values of the labels ``keys``."""
        return {
            tuple(sample_labels.get(key, "") for key in keys): value
            for sample_labels, value in self._samples.get(name, [])
        }

    def labelled(self, name: str, **labels: str) -> dict[frozenset[tuple[str, str]], float]:
        """Every sample of ``name`` whose labels include ``labels``, keyed by all its labels."""
        wanted = set(labels.items())
        return {
            frozenset(sample_labels.items()): value
            for sample_labels, value in self._samples.get(name, [])
            if wanted <= set(sample_labels.items())
        }


def scrape(metrics_port: int, timeout: float = 5.0) -> Samples:
    response = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=timeout)
    response.raise_for_status()
    return Samples(response.text)
