"""End to end: redlines, rounds and initials through the CLI against a real server.

Uses the talks of :mod:`tests.client.test_e2e` (founded afresh for this module): a
mediator, two delegations (north: nh, na, nb; south: sh, sa), an auditor, and the
channels ``plenary`` (both delegations and the mediator) and ``wg``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from client.api import DocketClient
from client.errors import ServerError
from protocol.encoding import JSONValue, b64e, canonical
from tests.client.conftest import PASSPHRASE
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


def test_a_round_is_opened_closed_and_countersigned(talks: Talks) -> None:
    med, nh, sh = talks.home("med"), talks.home("nh"), talks.home("sh")
    refused = cli(nh, "round", "open")
    assert refused.code != 0 and "not_entitled" in refused.err
    opened = ok(cli(med, "round", "open"))
    ok(cli(talks.home("na"), "send", "plenary", "--text", "Art. 5. Prisoners."))
    closed = ok(cli(med, "round", "close"))
    assert closed["index"] > opened["index"]
    ok(cli(nh, "round", "countersign", "1"))
    again = cli(nh, "round", "countersign", "1")
    assert again.code == 2 and "bad_round" in again.err
    ok(cli(sh, "round", "countersign", "1"))
    [r] = ok(cli(talks.home("obs"), "rounds"))["rounds"]
    assert r["round"] == 1 and r["size"] == closed["index"]
    assert sorted(r["countersigns"]) == ["north", "south"]
    human = cli(talks.home("obs"), "rounds", as_json=False)
    assert "countersigned: north, south" in human.out
    talks.witness_all()
    out = talks.home("obs").parent / "round-1.json"
    ok(cli(talks.home("obs"), "rounds", "--bundle", "1", "--out", str(out)))
    verified = ok(cli(None, "verify-evidence", str(out), "--talks", talks.fingerprint))
    assert verified["t"] == "round" and verified["size"] == closed["index"]
    assert sorted(verified["countersigns"]) == ["north", "south"]
    assert verified["not_countersigned"] == []
    # A round record claimed over another size: the consistency proof no longer holds.
    bundle = json.loads(out.read_bytes())
    bundle["consistency"] = bundle["consistency"][1:]
    forged = out.with_name("round-forged.json")
    forged.write_bytes(canonical(bundle))
    refused = cli(None, "verify-evidence", str(forged), "--talks", talks.fingerprint)
    assert refused.code == 1 and "step 5 (close)" in refused.err


def test_round_record_over_a_checkpoint_the_log_never_had_is_refused_by_the_server(
    talks: Talks,
) -> None:
    ok(cli(talks.home("med"), "round", "open"))

    async def forge() -> str:
        async with DocketClient(talks.home("med"), passphrase=PASSPHRASE) as client:
            await client.sync()
            size = client.log.size
            body: dict[str, JSONValue] = {
                "channel": None, "round": 2, "size": size, "root": b64e(bytes(32)),
            }  # fmt: skip
            act = client.acts.make("round.close", body)
            try:
                await client.core.transport().post("/v1/acts", act.to_json())
            except ServerError as exc:
                return exc.code
            return "accepted"

    assert asyncio.run(forge()) == "unknown_checkpoint"
    ok(cli(talks.home("med"), "round", "close"))


def test_a_compromise_initialled_by_every_head_is_agreed(talks: Talks) -> None:
    na, nh, sh = talks.home("na"), talks.home("nh"), talks.home("sh")
    v1 = ok(cli(na, "send", "plenary", "--text", "Art. 6. Elections within a year."))
    refused = cli(na, "initial", str(v1["index"]))
    assert refused.code == 2 and "not_entitled" in refused.err
    first = ok(cli(nh, "initial", str(v1["index"])))
    assert first["status"]["state"] == "initialled 1 of 2"
    ok(cli(sh, "inbox"))
    v2 = ok(
        cli(sh, "send", "plenary", "--text", "Art. 6. Elections within two years.",
            "--parent", str(v1["index"]))
    )  # fmt: skip
    stale = cli(sh, "initial", str(v1["index"]))
    assert stale.code == 2 and "bad_initial" in stale.err
    ok(cli(sh, "initial", str(v2["index"])))
    ok(cli(sh, "initial", str(v2["index"]), "--withdraw"))
    ok(cli(sh, "initial", str(v2["index"])))
    done = ok(cli(nh, "initial", str(v2["index"])))
    assert done["status"]["state"] == "agreed"
    agreed = ok(cli(talks.home("obs"), "agreed"))
    [text] = [a for a in agreed["agreed"] if a["index"] == v2["index"]]
    assert sorted(text["initials"]) == ["north", "south"]
    late = cli(nh, "initial", str(v2["index"]), "--withdraw")
    assert late.code == 2 and "bad_initial" in late.err
    talks.witness_all()
    out = talks.home("sh").parent / "agreed.json"
    written = ok(cli(sh, "agreed", "--bundle", str(v2["index"]), "--out", str(out)))
    assert written["bytes"] == out.stat().st_size
    verified = ok(cli(None, "verify-evidence", str(out), "--talks", talks.fingerprint))
    assert verified["t"] == "agreed" and verified["index"] == v2["index"]
    assert verified["body"] == "Art. 6. Elections within two years."
    assert sorted(verified["initials"]) == ["north", "south"]
    assert verified["agreed_at"] == done["index"]
    # An agreed state claimed with a delegation missing: drop the south's initial.
    bundle = json.loads(out.read_bytes())
    south = verified["initials"]["south"]["index"]
    bundle["initials"] = [i for i in bundle["initials"] if i["index"] != south]
    forged = out.with_name("agreed-missing.json")
    forged.write_bytes(canonical(bundle))
    refused = cli(None, "verify-evidence", str(forged), "--talks", talks.fingerprint)
    assert refused.code == 1 and "no initial by south" in refused.err


def test_simultaneous_exchange_of_sealed_proposals(talks: Talks) -> None:
    med, na, sh = talks.home("med"), talks.home("na"), talks.home("sh")
    opened = ok(
        cli(med, "call", "open", "plenary", "--delegation", "north", "--delegation", "south",
            "--deadline", "600")
    )  # fmt: skip
    call = str(opened["call"])
    north = ok(cli(na, "propose", call, "--text", "North: the bridge reopens in May."))
    early = cli(na, "reveal", call)
    assert early.code == 2 and "not_released" in early.err
    sealed = ok(cli(sh, "read", str(north["draft"]["index"])))
    assert "bridge" not in json.dumps(sealed)  # the south sees only the sealed blob
    not_yet = cli(sh, "proposal", str(north["draft"]["index"]))
    assert not_yet.code == 2 and "not_released" in not_yet.err
    premature = cli(med, "call", "release", call)
    assert premature.code == 2 and "bad_call" in premature.err
    ok(cli(sh, "propose", call, "--text", "South: the bridge reopens in March."))
    by_head = cli(talks.home("nh"), "call", "release", call)
    assert by_head.code == 2 and "not_entitled" in by_head.err
    ok(cli(med, "call", "release", call))
    late = cli(talks.home("nb"), "propose", call, "--text", "North again.")
    assert late.code == 2 and "late_proposal" in late.err
    ok(cli(na, "reveal", call))
    listed = ok(cli(talks.home("obs"), "call", "list"))
    [c] = [x for x in listed["calls"] if x["call"] == opened["call"]]
    assert c["unrevealed"] == ["south"]
    opened_north = ok(cli(sh, "proposal", str(north["draft"]["index"])))
    assert opened_north["body"] == "North: the bridge reopens in May."
    ok(cli(sh, "reveal", call))
    listed = ok(cli(talks.home("obs"), "call", "list"))
    assert [x for x in listed["calls"] if x["call"] == opened["call"]][0]["unrevealed"] == []


def test_a_non_paper_is_verified_by_recipients_and_never_disclosed(
    talks: Talks, tmp_path: Path
) -> None:
    med, sh = talks.home("med"), talks.home("sh")
    sent = ok(cli(med, "send", "plenary", "--non-paper", "--title", "Non-paper",
                  "--text", "What if the commission sat in both capitals?"))  # fmt: skip
    inbox = ok(cli(sh, "inbox"))
    assert any(i["index"] == sent["index"] for i in inbox["items"])
    read = ok(cli(sh, "read", str(sent["index"])))
    assert read["mode"] == "non-paper" and read["sender"] == "med"
    assert read["body"] == "What if the commission sat in both capitals?"
    human = cli(sh, "read", str(sent["index"]), as_json=False)
    assert "NON-PAPER" in human.out
    history = ok(cli(sh, "history", str(sent["index"])))
    assert history["versions"][0]["mode"] == "non-paper"
    refused = cli(sh, "disclose", str(sent["index"]), "--out", str(tmp_path / "np.json"))
    assert refused.code == 2 and "non_paper" in refused.err
    assert not (tmp_path / "np.json").exists()
    receipts = ok(cli(med, "receipts", str(sent["index"])))
    assert {r["member"]: r for r in receipts["recipients"]}["sh"]["received"] is not None
    log = ok(cli(talks.home("obs"), "log"))
    assert log is not None
