"""The redline's rendering: plain markers off a terminal, colour codes only of our own."""

from __future__ import annotations

from client.cli.redlines import compare, render
from protocol.envelope import Payload


def test_plain_markers_and_no_differences() -> None:
    old = Payload(title="t", body="Forces withdraw 5 km.")
    new = Payload(title="t", body="Forces withdraw 10 km.")
    assert render(compare(old, new), colour=False) == ["Forces withdraw [-5-]{+10+} km."]
    assert render(compare(old, old), colour=False)[-1] == "(no differences)"


def test_colour_codes_wrap_only_terminal_safe_text_from_the_other_party() -> None:
    old = Payload(title="t", body="Art. 1.")
    new = Payload(title="t", body="Art. 1. \x1b[2J\x1b]8;;https://evil.example\x07annex")
    lines = render(compare(old, new), colour=True)
    text = "\n".join(lines)
    # Our own codes (green underline, reset) and nothing the sender wrote.
    assert "\x1b[32;4m" in text and "\x1b[0m" in text
    assert "\x1b[2J" not in text and "\x1b]8" not in text and "\x07" not in text
    assert "?[2J" in text


def test_a_file_that_is_not_text_is_compared_by_hash_and_size() -> None:
    a = Payload(title="map", file_name="a.png", media_type="image/png", file_data=b"\x89PNG\x00")
    b = Payload(title="map", file_name="a.png", media_type="image/png", file_data=b"\x89PNG\x01")
    diff = compare(a, b)
    assert diff["text"] is None and diff["changed"] is True
    assert "Not text: compared by hash and size only." in render(diff, colour=False)
