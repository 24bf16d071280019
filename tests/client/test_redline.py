"""client.redline: word-level diffs rebuild both texts and mark only what changed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from client import redline
from client.redline import Op

TEXT = st.text(alphabet=st.sampled_from(list("ab c.,\n\u00e9\u05d0")), max_size=60)


@given(TEXT, TEXT)
def test_diff_rebuilds_old_and_new_text(old: str, new: str) -> None:
    ops = redline.words(old, new)
    assert redline.old_text(ops) == old
    assert redline.new_text(ops) == new
    assert redline.changed(ops) == (old != new)
    assert all(op.text for op in ops)
    assert all(a.kind != b.kind for a, b in zip(ops, ops[1:], strict=False))


def test_one_changed_word_in_a_long_paragraph_is_one_replacement() -> None:
    old = "The parties shall withdraw all forces within thirty days of signature."
    new = "The parties shall withdraw all forces within sixty days of signature."
    assert redline.words(old, new) == [
        Op("equal", "The parties shall withdraw all forces within "),
        Op("delete", "thirty"),
        Op("insert", "sixty"),
        Op("equal", " days of signature."),
    ]
    assert redline.plain(redline.words(old, new)) == (
        "The parties shall withdraw all forces within [-thirty-]{+sixty+} days of signature."
    )


def test_long_texts_with_common_words_still_align() -> None:
    # autojunk would drop "the" and " " as junk past 200 tokens and misalign the texts
    old = " ".join(["the article", "of the treaty"] * 150)
    new = old.replace("treaty", "accord", 1)
    ops = redline.words(old, new)
    assert [op.kind for op in ops] == ["equal", "delete", "insert", "equal"]


def test_a_text_too_long_to_diff_is_refused_not_stalled() -> None:
    with pytest.raises(redline.TooLongError):
        redline.words("a " * (redline.MAX_TOKENS // 2 + 1), "b")


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"plain text\n", True),
        ("r\u00e9sum\u00e9\ttab".encode(), True),
        (b"\x89PNG\r\n\x1a\n\x00\x00", False),
        (b"\xff\xfe not utf-8", False),
        (b"bell \x07", False),
        (b"", True),
    ],
)
def test_is_text_tells_text_from_binary(data: bytes, text: bool) -> None:
    assert redline.is_text(data) is text
