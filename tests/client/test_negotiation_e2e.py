"""End to end: redlines, rounds and initials through the CLI against a real server.

Uses the talks of :mod:`tests.client.test_e2e` (founded afresh for this module): a
mediator, two delegations (north: nh, na, nb; south: sh, sa), an auditor, and the
channels ``plenary`` (both delegations and the mediator) and ``wg``.
"""

from __future__ import annotations

from pathlib import Path

from tests.client.test_e2e import Talks, cli, env, ok, talks

__all__ = ["env", "talks"]


def test_diff_shows_a_word_level_redline(talks: Talks) -> None:
    v1 = ok(cli(talks.home("na"), "send", "wg", "--text", "The corridor opens at 06:00 daily."))
    ok(cli(talks.home("sa"), "inbox"))
    v2 = ok(
        cli(talks.home("sa"), "send", "wg", "--text", "The corridor opens at 05:00 daily.",
            "--parent", str(v1["index"]))
    )  # fmt: skip
    diff = ok(cli(talks.home("med"), "diff", str(v1["index"]), str(v2["index"])))
    assert diff["changed"] is True
    assert {"op": "delete", "text": "06"} in diff["text"]
    assert {"op": "insert", "text": "05"} in diff["text"]
    human = cli(talks.home("med"), "diff", str(v1["index"]), str(v2["index"]), as_json=False)
    assert human.code == 0 and "[-06-]{+05+}" in human.out and "\x1b" not in human.out

    history = ok(cli(talks.home("med"), "history", v1["draft"], "--diff"))
    assert "diff" not in history["versions"][0]
    assert history["versions"][1]["diff"]["against"] == v1["index"]
    human = cli(talks.home("med"), "history", v1["draft"], "--diff", as_json=False)
    assert "[-06-]{+05+}" in human.out


def test_diff_of_files_that_are_not_text_compares_hash_and_size(
    talks: Talks, tmp_path: Path
) -> None:
    a, b = tmp_path / "map-a.png", tmp_path / "map-b.png"
    a.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x01")
    b.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x02\x03")
    one = ok(cli(talks.home("na"), "send", "wg", str(a)))
    two = ok(cli(talks.home("na"), "send", "wg", str(b)))
    diff = ok(cli(talks.home("med"), "diff", str(one["index"]), str(two["index"])))
    assert diff["text"] is None and diff["changed"] is True
    assert diff["file"]["old"]["size"] == 10 and diff["file"]["new"]["size"] == 11
    assert diff["file"]["old"]["text"] is False
    human = cli(talks.home("med"), "diff", str(one["index"]), str(two["index"]), as_json=False)
    assert "compared by hash and size" in human.out
