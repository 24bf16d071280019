"""C2SP signed notes, checkpoints and cosignatures: spec examples, strictness, quorum, witness.

Known answers come verbatim from the C2SP spec texts (signed-note.md, tlog-checkpoint.md,
tlog-cosignature.md) and from the Go reference implementation's tests
(golang.org/x/mod/sumdb/note note_test.go: the PeterNeumann and EnochRoot keys and notes).
Ed25519 is deterministic, so our signer must reproduce the Go signature byte for byte.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import crypto
from protocol.checkpoint import (
    MAX_SIGNATURES,
    Checkpoint,
    KeyId,
    NoteSignature,
    SignedNote,
    WitnessState,
    cosign,
    cosignature_key_id,
    cosignature_message,
    cosigners,
    format_note,
    note_key_id,
    open_checkpoint,
    parse_note,
    require_quorum,
    sign_checkpoint,
    verify_cosignature,
)
from protocol.encoding import canonical, parse
from protocol.errors import CheckpointError, ForkError, QuorumError, RollbackError
from protocol.merkle import EMPTY_ROOT, MemoryTree

# --- golang.org/x/mod/sumdb/note note_test.go ---------------------------------------------

GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_TEXT = (
    b"If you think cryptography is the answer to your problem,\n"
    b"then you don't know what your problem is.\n"
)
PETER_SIG = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdng"
    "otpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWL"
    "ox33WWd1RvMc+QQ=\n"
)


def vkey_parts(vkey: str) -> tuple[str, str, bytes]:
    """Split a Go verifier key ``name+hash+base64(type || key)``."""
    name, hash_hex, material = vkey.split("+", 2)
    raw = base64.b64decode(material)
    assert raw[0] == 0x01
    return name, hash_hex, raw[1:]


def test_go_key_ids() -> None:
    for vkey in (GO_VKEY, ENOCH_VKEY):
        name, hash_hex, public = vkey_parts(vkey)
        assert note_key_id(name, public).hex() == hash_hex


def test_go_signature_is_reproduced_byte_for_byte() -> None:
    seed = base64.b64decode(GO_SKEY.split("+", 4)[4])[1:]  # the key material has a "+"
    key = crypto.SigningKey(seed)
    name, _, public = vkey_parts(GO_VKEY)
    assert key.public_bytes() == public
    sig = NoteSignature(
        name=name, key_id=note_key_id(name, public), sig_bytes=key.sign_note(GO_TEXT)
    )
    assert sig.line() == PETER_SIG
    assert format_note(GO_TEXT, [sig.line()]) == GO_TEXT + b"\n" + PETER_SIG.encode()


def test_go_two_signature_note() -> None:
    data = GO_TEXT + b"\n" + (PETER_SIG + ENOCH_SIG).encode()
    note = parse_note(data)
    assert note.text == GO_TEXT
    assert [(s.name, s.key_id.hex()) for s in note.signatures] == [
        ("PeterNeumann", "c74f20a3"),
        ("EnochRoot", "af0cfe78"),
    ]
    for sig, vkey in zip(note.signatures, (GO_VKEY, ENOCH_VKEY), strict=True):
        crypto.verify_note(vkey_parts(vkey)[2], note.text, sig.sig_bytes)
    assert note.to_bytes() == data


@pytest.mark.parametrize(
    "data",
    [
        GO_TEXT,
        GO_TEXT + b"\n",
        GO_TEXT + b"\n" + PETER_SIG[:-1].encode(),
        b"\x01" + GO_TEXT + b"\n" + PETER_SIG.encode(),
        b"\xff" + GO_TEXT + b"\n" + PETER_SIG.encode(),
        GO_TEXT + b"\n" + PETER_SIG.replace("PeterNeumann", "Bad Name").encode(),
        GO_TEXT + b"\n" + PETER_SIG.encode() + b"Unexpected line.\n",
        GO_TEXT + b"\n" + PETER_SIG.encode() * (MAX_SIGNATURES + 1),
    ],
    ids=[
        "no-signatures",
        "blank-line-only",
        "missing-final-newline",
        "control-char",
        "invalid-utf8",
        "space-in-name",
        "unexpected-line",
        "too-many-signatures",
    ],
)
def test_go_malformed_notes(data: bytes) -> None:
    with pytest.raises(CheckpointError):
        parse_note(data)


def test_go_signature_limit_is_inclusive() -> None:
    note = parse_note(GO_TEXT + b"\n" + PETER_SIG.encode() * MAX_SIGNATURES)
    assert len(note.signatures) == MAX_SIGNATURES


# --- the C2SP spec examples, verbatim -------------------------------------------------------

SPEC_NOTE = (
    "Ognuno sta solo sul cuor della terra\n"
    "trafitto da un raggio di sole:\n"
    "\n"
    "ed è subito sera.\n"
    "\n"
    "— quasimodo.example/salvatore NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQ"
    "U0xMcXxj99ihAQwaqP3ZekRwNtIc=\n"
).encode()

SPEC_CHECKPOINT_BODY = (
    b"example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
)
SPEC_LOG_SIG = (
    "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv"
    "2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
)
SPEC_COSIG = (
    "— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b"
    "2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
)
SPEC_COSIGNED_MESSAGE = (
    b"cosignature/v1\n"
    b"time 1679315147\n"
    b"example.com/behind-the-sofa\n"
    b"20852163\n"
    b"CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
)


def test_spec_note_example_parses_and_round_trips() -> None:
    note = parse_note(SPEC_NOTE)
    # The text may contain blank lines: it ends at the *last* blank line.
    assert note.text.decode().endswith("\n\ned è subito sera.\n")
    assert [s.name for s in note.signatures] == ["quasimodo.example/salvatore"]
    assert len(note.signatures[0].sig_bytes) == 64
    assert note.to_bytes() == SPEC_NOTE


def test_spec_checkpoint_example() -> None:
    data = SPEC_CHECKPOINT_BODY + b"\n" + (SPEC_LOG_SIG + SPEC_COSIG).encode()
    note = parse_note(data)
    cp = Checkpoint.from_body(note.text)
    assert (cp.origin, cp.size, cp.extensions) == ("example.com/behind-the-sofa", 20852163, ())
    assert cp.body() == SPEC_CHECKPOINT_BODY
    assert note.to_bytes() == data
    log_sig, cosig = note.signatures
    assert (log_sig.name, len(log_sig.sig_bytes)) == ("example.com/behind-the-sofa", 64)
    # The cosignature's timestamp is the one the spec's signed-message example shows.
    assert cosig.name == "witness.example.com/w1"
    assert len(cosig.sig_bytes) == 72
    timestamp = int.from_bytes(cosig.sig_bytes[:8], "big")
    assert timestamp == 1679315147
    assert cosignature_message(cp, timestamp) == SPEC_COSIGNED_MESSAGE


# --- our own keys -----------------------------------------------------------------------------

ORIGIN = "docket.example/talks/42"
LOG_NAME = "docket.example/log"
LOG_KEY = crypto.SigningKey(crypto.sha256(b"test log key"))
W_KEYS = {f"witness.example/w{i}": crypto.SigningKey(crypto.sha256(b"w%d" % i)) for i in range(4)}
WITNESSES = {name: key.public_bytes() for name, key in W_KEYS.items()}
W0, W1, W2, W3 = sorted(W_KEYS)

TREE = MemoryTree.from_entries([b"entry %d" % i for i in range(20)])


def checkpoint(size: int = 10, **kw: object) -> Checkpoint:
    return Checkpoint(origin=ORIGIN, size=size, root=TREE.root(size), **kw)  # type: ignore[arg-type]


def signed(cp: Checkpoint, *extra: str) -> bytes:
    return format_note(cp.body(), [sign_checkpoint(cp, LOG_NAME, LOG_KEY), *extra])


def open_(data: bytes) -> tuple[Checkpoint, SignedNote]:
    return open_checkpoint(data, origin=ORIGIN, log_name=LOG_NAME, log_key=LOG_KEY.public_bytes())


def test_sign_and_open_round_trip() -> None:
    cp = checkpoint(extensions=("ext one", "ext—two"))
    data = signed(cp)
    opened, note = open_(data)
    assert opened == cp
    assert note.to_bytes() == data
    assert data.startswith(f"{ORIGIN}\n10\n".encode())


def test_empty_tree_checkpoint() -> None:
    cp = Checkpoint(origin=ORIGIN, size=0, root=EMPTY_ROOT)
    assert cp.body() == f"{ORIGIN}\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n".encode()
    assert open_(signed(cp))[0] == cp


lines = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=30).filter(
    lambda s: "\n" not in s
)


@given(
    origin=lines,
    size=st.integers(min_value=0, max_value=2**53 - 1),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(lines, max_size=3),
)
def test_checkpoint_body_round_trips(
    origin: str, size: int, root: bytes, extensions: list[str]
) -> None:
    cp = Checkpoint(origin=origin, size=size, root=root, extensions=tuple(extensions))
    assert Checkpoint.from_body(cp.body()) == cp


names = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp")), min_size=1, max_size=20
).filter(lambda s: "+" not in s and not any(c.isspace() for c in s))
signatures = st.builds(
    NoteSignature,
    name=names,
    key_id=st.binary(min_size=4, max_size=4).map(KeyId),
    sig_bytes=st.binary(min_size=1, max_size=80),
)
note_texts = st.lists(st.one_of(st.just(""), lines), min_size=1, max_size=5).map(
    lambda ls: "".join(f"{line}\n" for line in ls).encode()
)


@given(text=note_texts, sigs=st.lists(signatures, min_size=1, max_size=5))
def test_signed_note_round_trips(text: bytes, sigs: list[NoteSignature]) -> None:
    note = SignedNote(text=text, signatures=tuple(sigs))
    assert parse_note(note.to_bytes()) == note


@given(
    origin=lines,
    size=st.integers(min_value=1, max_value=2**53 - 1),
    root=st.binary(min_size=32, max_size=32),
)
def test_witness_state_json_round_trips(origin: str, size: int, root: bytes) -> None:
    state = WitnessState(origin=origin, size=size, root=root)
    assert WitnessState.from_json(parse(canonical(state.to_json()))) == state


def test_unknown_signatures_are_ignored_but_preserved() -> None:
    cp = checkpoint()
    other = crypto.SigningKey(crypto.sha256(b"someone else"))
    # Same name as the log but another key: an unknown key, so it is ignored.
    stranger = sign_checkpoint(cp, LOG_NAME, other)
    data = format_note(cp.body(), [stranger, sign_checkpoint(cp, LOG_NAME, LOG_KEY), ENOCH_SIG])
    _, note = open_(data)
    assert len(note.signatures) == 3
    assert note.to_bytes() == data


def test_a_bad_signature_by_the_log_key_rejects_the_note() -> None:
    cp = checkpoint()
    good = parse_note(signed(cp)).signatures[0]
    bad = NoteSignature(name=good.name, key_id=good.key_id, sig_bytes=bytes(64))
    with pytest.raises(CheckpointError):
        open_(format_note(cp.body(), [good.line(), bad.line()]))


def test_only_other_signatures_is_rejected() -> None:
    cp = checkpoint()
    other = crypto.SigningKey(crypto.sha256(b"someone else"))
    with pytest.raises(CheckpointError):
        open_(format_note(cp.body(), [sign_checkpoint(cp, LOG_NAME, other)]))


def test_wrong_origin_is_rejected() -> None:
    cp = Checkpoint(origin="other.example/log", size=1, root=TREE.root(1))
    with pytest.raises(CheckpointError):
        open_(signed(cp))


def test_any_byte_change_breaks_verification() -> None:
    data = signed(checkpoint())
    open_(data)
    for i in range(len(data)):
        for flip in (0x01, 0x20, 0x80):
            mutated = data[:i] + bytes([data[i] ^ flip]) + data[i + 1 :]
            with pytest.raises(CheckpointError):
                open_(mutated)


# --- strict parsing: negative cases named after the mutation ---------------------------------

GOOD_BODY = checkpoint().body()
GOOD_SIG = sign_checkpoint(checkpoint(), LOG_NAME, LOG_KEY)
ROOT_B64 = GOOD_BODY.split(b"\n")[2]


def resigned(body: bytes) -> bytes:
    """A note whose log signature is valid for ``body``: only strict parsing can reject it."""
    sig = NoteSignature(
        name=LOG_NAME,
        key_id=note_key_id(LOG_NAME, LOG_KEY.public_bytes()),
        sig_bytes=LOG_KEY.sign_note(body),
    )
    return body + b"\n" + sig.line().encode()


def sig_line(old: str, new: str, count: int = 1) -> bytes:
    """The good note with its signature line edited."""
    return GOOD_BODY + b"\n" + GOOD_SIG.replace(old, new, count).encode()


def sig_b64(edit: Callable[[str], str]) -> bytes:
    """The good note with the base64 part of its signature line edited."""
    prefix, encoded = GOOD_SIG.rsplit(" ", 1)
    return GOOD_BODY + b"\n" + f"{prefix} {edit(encoded)}".encode()


def body(old: bytes, new: bytes) -> bytes:
    """A validly signed note over an edited body."""
    assert old in GOOD_BODY
    return resigned(GOOD_BODY.replace(old, new, 1))


URLSAFE_ROOT = base64.b64encode(bytes([0xFB] * 32))  # "+7v7..." : has '+' and '/'
NOTE_MUTATIONS: dict[str, bytes] = {
    # note framing
    "missing-final-newline": resigned(GOOD_BODY)[:-1],
    "no-signatures": GOOD_BODY + b"\n",
    "no-blank-line": GOOD_BODY + GOOD_SIG.encode(),
    "blank-line-after-signatures": resigned(GOOD_BODY) + b"\n",
    "nul-in-text": GOOD_BODY.replace(b"\n", b"\x00\n", 1) + b"\n" + GOOD_SIG.encode(),
    "cr-in-text": body(b"\n10\n", b"\r\n10\n"),
    "tab-in-text": body(b"\n10\n", b"\t\n10\n"),
    "crlf-line-endings": resigned(GOOD_BODY).replace(b"\n", b"\r\n"),
    "invalid-utf8": body(b"\n10\n", b"\xc3\x28\n10\n"),
    "overlong-utf8": body(b"\n10\n", b"\xc0\xaf\n10\n"),
    "too-large": resigned(GOOD_BODY + b"x" * (1 << 20) + b"\n"),
    "too-many-signatures": resigned(GOOD_BODY) + GOOD_SIG.encode() * MAX_SIGNATURES,
    "empty": b"",
    # signature lines
    "no-em-dash": sig_line("\u2014", "-"),
    "en-dash": sig_line("\u2014", "\u2013"),
    "no-space-after-dash": sig_line("\u2014 ", "\u2014"),
    "empty-name": sig_line(LOG_NAME, ""),
    "plus-in-name": sig_line(LOG_NAME, LOG_NAME + "+x"),
    "nbsp-in-name": sig_line(LOG_NAME, LOG_NAME + "\u00a0x"),
    "ideographic-space-in-name": sig_line(LOG_NAME, LOG_NAME + "\u3000x"),
    "double-space": sig_line(" ", "  ", 2),
    "trailing-space": sig_line("\n", " \n"),
    "sig-base64url": sig_b64(lambda b: b.replace("+", "-").replace("/", "_")),
    "sig-not-padded": sig_b64(lambda b: b.rstrip("=\n") + "\n"),
    "sig-only-key-id": GOOD_BODY + f"\n\u2014 {LOG_NAME} AAAAAA==\n".encode(),
}
# Well-formed notes, validly signed by the log, whose text is not a valid checkpoint.
BODY_MUTATIONS: dict[str, bytes] = {
    "blank-line-inside-body": body(b"\n10\n", b"\n\n10\n"),
    "extra-blank-line": resigned(GOOD_BODY + b"\n"),
    "padded-size": body(b"\n10\n", b"\n010\n"),
    "plus-size": body(b"\n10\n", b"\n+10\n"),
    "unicode-digit-size": body(b"\n10\n", "\n1\uff10\n".encode()),
    "underscore-size": body(b"\n10\n", b"\n1_0\n"),
    "space-in-size": body(b"\n10\n", b"\n 10\n"),
    "negative-size": body(b"\n10\n", b"\n-10\n"),
    "huge-size": body(b"\n10\n", b"\n99999999999999999999\n"),
    "bad-base64-root": body(ROOT_B64, ROOT_B64[:-2] + b"!="),
    "base64url-root": body(ROOT_B64, URLSAFE_ROOT.replace(b"+", b"-").replace(b"/", b"_")),
    "unpadded-root": body(ROOT_B64, ROOT_B64.rstrip(b"=")),
    "noncanonical-root-bits": body(ROOT_B64, ROOT_B64[:-2] + b"V="),
    "short-root": body(ROOT_B64, base64.b64encode(bytes(31))),
    "missing-root": body(ROOT_B64 + b"\n", b""),
    "empty-origin": resigned(b"\n" + GOOD_BODY.split(b"\n", 1)[1]),
    "wrong-origin": body(ORIGIN.encode(), b"other.example/log"),
}


def test_mutation_helpers_do_not_break_the_good_note() -> None:
    assert open_(resigned(GOOD_BODY))[0] == checkpoint()
    assert open_(resigned(GOOD_BODY.replace(ROOT_B64, URLSAFE_ROOT)))[0].root == bytes([0xFB] * 32)
    assert b"+" in URLSAFE_ROOT and b"/" in URLSAFE_ROOT


@pytest.mark.parametrize("mutation", sorted(NOTE_MUTATIONS))
def test_strict_note_parse_rejects(mutation: str) -> None:
    data = NOTE_MUTATIONS[mutation]
    with pytest.raises(CheckpointError):
        parse_note(data)
    with pytest.raises(CheckpointError):
        open_(data)


@pytest.mark.parametrize("mutation", sorted(BODY_MUTATIONS))
def test_strict_checkpoint_parse_rejects(mutation: str) -> None:
    data = BODY_MUTATIONS[mutation]
    parse_note(data)  # the note itself is fine and its signature verifies ...
    with pytest.raises(CheckpointError):
        open_(data)  # ... but its text is not an acceptable checkpoint


@given(st.binary(max_size=300))
def test_parsers_raise_only_checkpoint_error_on_bytes(data: bytes) -> None:
    for parser in (parse_note, Checkpoint.from_body, open_):
        try:
            parser(data)
        except CheckpointError:
            pass


@given(st.data())
def test_parsers_raise_only_checkpoint_error_on_mutations(data: st.DataObject) -> None:
    good = bytearray(signed(checkpoint(), cosign(checkpoint(), W0, W_KEYS[W0], timestamp=5)))
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        i = data.draw(st.integers(min_value=0, max_value=len(good) - 1))
        op = data.draw(st.sampled_from(["set", "insert", "delete"]))
        byte = data.draw(st.sampled_from([0x00, 0x0A, 0x20, 0x2B, 0x3D, 0xE2, 0x80, 0x94, 0x41]))
        if op == "set":
            good[i] = byte
        elif op == "insert":
            good.insert(i, byte)
        elif len(good) > 1:
            del good[i]
    for parser in (parse_note, open_):
        try:
            parser(bytes(good))
        except CheckpointError:
            pass


@pytest.mark.parametrize(
    ("kwargs", "what"),
    [
        ({"origin": "", "size": 1, "root": bytes(32)}, "empty-origin"),
        ({"origin": "a\nb", "size": 1, "root": bytes(32)}, "newline-in-origin"),
        ({"origin": "a", "size": -1, "root": bytes(32)}, "negative-size"),
        ({"origin": "a", "size": True, "root": bytes(32)}, "bool-size"),
        ({"origin": "a", "size": 2**53, "root": bytes(32)}, "size-beyond-json"),
        ({"origin": "a", "size": 1, "root": bytes(31)}, "short-root"),
        ({"origin": "a", "size": 1, "root": bytes(32), "extensions": ("",)}, "empty-extension"),
        ({"origin": "a", "size": 1, "root": bytes(32), "extensions": ["x"]}, "list-extensions"),
        ({"origin": "\ud800", "size": 1, "root": bytes(32)}, "lone-surrogate"),
    ],
)
def test_checkpoint_cannot_exist_invalid(kwargs: dict[str, object], what: str) -> None:
    with pytest.raises(CheckpointError):
        Checkpoint(**kwargs)  # type: ignore[arg-type]


def test_format_note_validates_its_parts() -> None:
    body = checkpoint().body()
    with pytest.raises(CheckpointError):
        format_note(body, [])
    with pytest.raises(CheckpointError):
        format_note(body, ["not a signature line\n"])
    with pytest.raises(CheckpointError):
        format_note(body[:-1], [GOOD_SIG])


# --- cosignatures and quorum ----------------------------------------------------------------


def cosigned(cp: Checkpoint, *who: tuple[str, int]) -> SignedNote:
    lines = [cosign(cp, name, W_KEYS[name], timestamp=ts) for name, ts in who]
    return open_(signed(cp, *lines))[1]


def test_cosignature_round_trip() -> None:
    cp = checkpoint()
    line = cosign(cp, W0, W_KEYS[W0], timestamp=1_700_000_000)
    sig = NoteSignature.from_line(line)
    assert sig.key_id == cosignature_key_id(W0, WITNESSES[W0])
    assert sig.key_id != note_key_id(W0, WITNESSES[W0])  # type 0x04, not 0x01
    assert sig.sig_bytes[:8] == (1_700_000_000).to_bytes(8, "big")
    assert verify_cosignature(cp, sig, W0, WITNESSES[W0]) == 1_700_000_000


def test_cosignature_by_another_checkpoint_fails() -> None:
    sig = NoteSignature.from_line(cosign(checkpoint(10), W0, W_KEYS[W0], timestamp=1))
    with pytest.raises(CheckpointError):
        verify_cosignature(checkpoint(11), sig, W0, WITNESSES[W0])


@pytest.mark.parametrize(
    "mutate",
    [
        lambda s: NoteSignature(name=s.name, key_id=s.key_id, sig_bytes=s.sig_bytes[:-1]),
        lambda s: NoteSignature(
            name=s.name, key_id=s.key_id, sig_bytes=bytes([s.sig_bytes[0] ^ 1]) + s.sig_bytes[1:]
        ),
        lambda s: NoteSignature(name=s.name, key_id=s.key_id, sig_bytes=b"\x80" + s.sig_bytes[1:]),
        lambda s: NoteSignature(name=W1, key_id=s.key_id, sig_bytes=s.sig_bytes),
        lambda s: NoteSignature(name=s.name, key_id=KeyId(bytes(4)), sig_bytes=s.sig_bytes),
    ],
    ids=["truncated", "changed-timestamp", "timestamp-over-2^63", "other-name", "other-key-id"],
)
def test_cosignature_mutations_fail(mutate: Callable[[NoteSignature], NoteSignature]) -> None:
    cp = checkpoint()
    sig = NoteSignature.from_line(cosign(cp, W0, W_KEYS[W0], timestamp=7))
    with pytest.raises(CheckpointError):
        verify_cosignature(cp, mutate(sig), W0, WITNESSES[W0])


def test_cosign_rejects_bad_timestamps() -> None:
    for ts in (-1, 2**63):
        with pytest.raises(CheckpointError):
            cosign(checkpoint(), W0, W_KEYS[W0], timestamp=ts)
    cosign(checkpoint(), W0, W_KEYS[W0], timestamp=2**63 - 1)


def test_cosigners_counts_duplicates_once_and_skips_bad_ones() -> None:
    cp = checkpoint()
    bad = NoteSignature.from_line(cosign(cp, W2, W_KEYS[W2], timestamp=3))
    bad = NoteSignature(name=bad.name, key_id=bad.key_id, sig_bytes=bad.sig_bytes[:8] + bytes(64))
    lines = [
        cosign(cp, W0, W_KEYS[W0], timestamp=10),
        cosign(cp, W0, W_KEYS[W0], timestamp=30),
        cosign(cp, W0, W_KEYS[W0], timestamp=20),
        cosign(cp, W1, W_KEYS[W1], timestamp=5),
        bad.line(),
        ENOCH_SIG,  # unknown witness
    ]
    _, note = open_(signed(cp, *lines))
    assert cosigners(cp, note, WITNESSES) == {W0: 30, W1: 5}
    require_quorum(cp, note, WITNESSES, 2)
    with pytest.raises(QuorumError):
        require_quorum(cp, note, WITNESSES, 3)


def test_quorum_is_not_met_by_one_witness_signing_thrice() -> None:
    cp = checkpoint()
    note = cosigned(cp, (W0, 1), (W0, 2), (W0, 3))
    with pytest.raises(QuorumError):
        require_quorum(cp, note, WITNESSES, 2)
    require_quorum(cp, note, WITNESSES, 1)
    require_quorum(cp, note, WITNESSES, 0)


def test_quorum_is_not_met_by_one_key_under_two_names() -> None:
    """Attack: cosignature/v1 does not sign the witness name, so a signature by w0 can be
    relabelled as "alias" (recomputing the key id) if the policy lists w0's key twice."""
    cp = checkpoint()
    witnesses = {W0: WITNESSES[W0], "alias.example/w0": WITNESSES[W0]}
    real = NoteSignature.from_line(cosign(cp, W0, W_KEYS[W0], timestamp=9))
    relabelled = NoteSignature(
        name="alias.example/w0",
        key_id=cosignature_key_id("alias.example/w0", WITNESSES[W0]),
        sig_bytes=real.sig_bytes,
    )
    _, note = open_(signed(cp, real.line(), relabelled.line()))
    assert set(cosigners(cp, note, witnesses)) == {W0, "alias.example/w0"}
    with pytest.raises(QuorumError):
        require_quorum(cp, note, witnesses, 2)


def test_the_log_signature_is_not_a_cosignature() -> None:
    """Attack: list the log key as a witness; its type-0x01 signature must not count."""
    cp = checkpoint()
    _, note = open_(signed(cp))
    assert cosigners(cp, note, {LOG_NAME: LOG_KEY.public_bytes()}) == {}


def test_cosigners_requires_the_note_of_this_checkpoint() -> None:
    note = cosigned(checkpoint(10), (W0, 1))
    with pytest.raises(CheckpointError):
        cosigners(checkpoint(11), note, WITNESSES)


# --- the witness rule -------------------------------------------------------------------------


def test_witness_accepts_a_consistent_successor() -> None:
    state = WitnessState.initial(ORIGIN)
    for size in (0, 1, 5, 5, 8, 20):
        new = checkpoint(size)
        state.check_next(new, TREE.consistency_proof(state.size, size))
        state = state.advance(new)
    assert (state.size, state.root) == (20, TREE.root(20))


def test_witness_accepts_the_same_checkpoint_again() -> None:
    state = WitnessState.from_checkpoint(checkpoint(10))
    state.check_next(checkpoint(10), [])
    assert state.advance(checkpoint(10)) == state


def test_witness_rollback() -> None:
    state = WitnessState(origin=ORIGIN, size=10, root=TREE.root(10))
    with pytest.raises(RollbackError):
        state.check_next(checkpoint(9), [])
    with pytest.raises(RollbackError):
        state.advance(checkpoint(9))


def test_witness_fork_same_size_other_root() -> None:
    state = WitnessState(origin=ORIGIN, size=10, root=TREE.root(10))
    forked = Checkpoint(origin=ORIGIN, size=10, root=crypto.sha256(b"fork"))
    with pytest.raises(ForkError):
        state.check_next(forked, [])


def test_witness_fork_bad_consistency_proof() -> None:
    other = MemoryTree.from_entries([b"entry %d" % i for i in range(10)] + [b"evil"] * 5)
    state = WitnessState(origin=ORIGIN, size=12, root=TREE.root(12))
    forked = Checkpoint(origin=ORIGIN, size=15, root=other.root())
    with pytest.raises(ForkError):
        state.check_next(forked, other.consistency_proof(12))
    with pytest.raises(ForkError):
        state.check_next(checkpoint(15), TREE.consistency_proof(12, 15)[:-1])


def test_witness_other_origin() -> None:
    state = WitnessState.initial(ORIGIN)
    with pytest.raises(CheckpointError):
        state.check_next(Checkpoint(origin="x", size=0, root=EMPTY_ROOT), [])


def test_witness_state_json_round_trip() -> None:
    state = WitnessState(origin=ORIGIN, size=10, root=TREE.root(10))
    value = parse(canonical(state.to_json()))
    assert WitnessState.from_json(value) == state
    with pytest.raises(CheckpointError):
        WitnessState(origin=ORIGIN, size=0, root=TREE.root(1))


def test_witness_state_from_json_rejects_garbage() -> None:
    from protocol.errors import ProtocolError

    good = WitnessState.initial(ORIGIN).to_json()
    for bad in (
        {**good, "extra": 1},
        {k: v for k, v in good.items() if k != "root"},
        {**good, "size": "0"},
        {**good, "root": "AAAA"},
        {**good, "size": 2**53},
        [good],
    ):
        with pytest.raises(ProtocolError):
            WitnessState.from_json(bad)


def test_vkey_round_trips_and_rejects_a_swapped_key_id() -> None:
    from protocol import checkpoint as cpm
    from protocol import crypto as cr
    from tests.helpers import make_rng

    rng = make_rng("test_checkpoint/vkey")
    plus = 0
    for _ in range(32):  # some keys' standard base64 holds "+", which must not split
        other = cr.SigningKey.generate(rng)
        text = cpm.vkey("witness.example/w1", other.public_bytes())
        plus += text.split("+", 2)[2].count("+") > 0
        assert cpm.parse_vkey(text)[1] == other.public_bytes()
    assert plus > 0
    key = cr.SigningKey.generate(rng)
    line = cpm.vkey("witness.example/w1", key.public_bytes())
    assert cpm.parse_vkey(line) == ("witness.example/w1", key.public_bytes(), 4)
    name, kid, rest = line.split("+")
    for bad in (
        f"{name}+{'0' * 8}+{rest}",  # key id of another key
        f"other.example/w1+{kid}+{rest}",  # another name
        f"{name}+{kid}",  # too few parts
        f"{name}+{kid}+AAAA",  # not a key
    ):
        with pytest.raises(CheckpointError):
            cpm.parse_vkey(bad)
