"""Reading ``/metrics`` in tests with the Prometheus text parser (label order and number
formatting are the exposition library's business, not the tests')."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample: (name, labels) → value."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float | None:
    """The value of sample ``name`` with exactly ``labels``, or ``None``."""
    return samples(text).get((name, frozenset(labels.items())))


def types(text: str) -> dict[str, str]:
    """Family name → type (``counter``, ``gauge``, ``histogram``, ``info``...)."""
    return {family.name: family.type for family in text_string_to_metric_families(text)}
