"""The auditor's text report escapes what the log's authors wrote."""

from __future__ import annotations

from client.auditor import audit_log
from client.auditor.report import Alarm, escape_text
from tests.client.log_builder import standard_log
from tests.helpers import make_rng


def test_auditor_report_escapes_bidi_and_c1_in_names_and_reasons() -> None:
    builder, _ = standard_log(make_rng("report-names"))
    report = audit_log(
        builder.entries, pinned_talks=builder.talks, checkpoints=[builder.checkpoint()], workers=1
    )
    report.alarms.append(Alarm(code="bad_name", reason="member Eve\u202eexe.txt \x9b31m", index=3))
    text = report.render_text()
    assert "\u202e" not in text and "\x9b" not in text
    assert "Eve\\u{202E}exe.txt \\u{009B}31m" in text


def test_escape_text_keeps_readable_scripts() -> None:
    for fine in ("Délégation du Nord", "Делегация", "وفد", "北方"):
        assert escape_text(fine) == fine
    assert escape_text("a\u200bb\u3164c") == "a\\u{200B}b\\u{3164}c"
