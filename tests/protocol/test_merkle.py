"""RFC 9162 Merkle tree: known answers, cross-checks, properties and named mutations.

Independent references:

* a naive recursive MTH in this file and the literal RFC recursions in
  ``tests/vectors/gen_merkle.py`` (which produced the committed ``merkle.json``);
* the ``pymerkle`` package (v7), whose default "security" mode uses exactly the RFC 9162
  prefixes 0x00/0x01 and SHA-256("") for the empty tree.  Its roots and its inclusion
  paths (``path[0]`` is the leaf, ``path[1:]`` the RFC audit path) match ours byte for
  byte; its consistency proofs use a different layout, so for those we check that
  pymerkle's verifier accepts our roots and ours accepts our proofs;
* the RFC 6962 vectors of transparency-dev/merkle (``testonly/constants.go`` and
  ``proof/verify_test.go``), copied verbatim, with that suite's corruption probes.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pymerkle import InmemoryTree
from pymerkle import verify_consistency as pymerkle_verify_consistency

from protocol import crypto
from protocol.errors import ProofError
from protocol.merkle import (
    EMPTY_ROOT,
    Coord,
    Frontier,
    LeafHash,
    MemoryTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)
from tests.helpers import flip_bit
from tests.vectors import gen_merkle

VECTORS = Path(__file__).parent.parent / "vectors" / "merkle.json"
MAX = 300
ENTRIES = [b"entry %d" % i for i in range(MAX)]
TREE = MemoryTree.from_entries(ENTRIES)


def naive_mth(entries: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.1, written out once more without any shared code."""
    if not entries:
        return crypto.sha256(b"")
    if len(entries) == 1:
        return crypto.sha256(b"\x00" + entries[0])
    k = 1 << ((len(entries) - 1).bit_length() - 1)
    return crypto.sha256(b"\x01" + naive_mth(entries[:k]) + naive_mth(entries[k:]))


@functools.cache
def naive_root(size: int) -> bytes:
    return naive_mth(ENTRIES[:size])


@functools.cache
def pymerkle_tree() -> InmemoryTree:
    tree = InmemoryTree()  # default: SHA-256 with the RFC 9162 0x00/0x01 prefixes
    for e in ENTRIES:
        tree.append_entry(e)
    return tree


def h(hex_digest: str) -> bytes:
    return bytes.fromhex(hex_digest)


# --- hashing basics ---------------------------------------------------------------------


def test_hash_definitions() -> None:
    assert h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == EMPTY_ROOT
    assert leaf_hash(b"") == crypto.sha256(b"\x00")
    assert node_hash(b"a" * 32, b"b" * 32) == crypto.sha256(b"\x01" + b"a" * 32 + b"b" * 32)


# --- committed known-answer vectors -----------------------------------------------------


def test_vector_file_is_what_the_generator_writes() -> None:
    assert VECTORS.read_text(encoding="utf-8") == gen_merkle.render()


def test_vectors() -> None:
    doc = json.loads(VECTORS.read_text(encoding="utf-8"))
    entries = [e.encode("ascii") for e in doc["entries"]]
    tree = MemoryTree.from_entries(entries)
    assert [leaf_hash(e).hex() for e in entries] == doc["leaf_hashes"]
    for case in doc["roots"]:
        assert tree.root(case["size"]).hex() == case["root"]
    roots = [h(case["root"]) for case in doc["roots"]]
    for case in doc["inclusion"]:
        i, n, proof = case["index"], case["size"], [h(x) for x in case["proof"]]
        assert tree.inclusion_proof(i, n) == proof
        verify_inclusion(tree.leaf(i), i, n, proof, roots[n])
    for case in doc["consistency"]:
        m, n, proof = case["old_size"], case["new_size"], [h(x) for x in case["proof"]]
        assert tree.consistency_proof(m, n) == proof
        verify_consistency(m, n, roots[m], roots[n], proof)


def test_vectors_match_pymerkle() -> None:
    doc = json.loads(VECTORS.read_text(encoding="utf-8"))
    tree = InmemoryTree()
    for e in doc["entries"]:
        tree.append_entry(e.encode("ascii"))
    assert [tree.get_root(c["size"]).hex() for c in doc["roots"]] == [
        c["root"] for c in doc["roots"]
    ]


# transparency-dev/merkle testonly/constants.go and proof/verify_test.go (RFC 6962 = 9162
# hashing).  Their inclusion vectors number leaves from 1; ours from 0.
TD_LEAVES = [
    h(""),
    h("00"),
    h("10"),
    h("2021"),
    h("3031"),
    h("40414243"),
    h("5051525354555657"),
    h("606162636465666768696a6b6c6d6e6f"),
]
TD_ROOTS = [
    EMPTY_ROOT,
    h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    h("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    h("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
    h("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
    h("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
    h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
]
TD_INCLUSION = [
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (3, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        2,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
TD_CONSISTENCY = [
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]
SOME_HASH = h("abacaba000000000000000000000000000000000000000000060061e00123456")


def test_transparency_dev_roots() -> None:
    tree = MemoryTree.from_entries(TD_LEAVES)
    assert [tree.root(n) for n in range(9)] == TD_ROOTS


@pytest.mark.parametrize(("leaf1", "size", "proof_hex"), TD_INCLUSION)
def test_transparency_dev_inclusion(leaf1: int, size: int, proof_hex: list[str]) -> None:
    tree = MemoryTree.from_entries(TD_LEAVES)
    index, proof, rt = leaf1 - 1, [h(x) for x in proof_hex], TD_ROOTS[size]
    leaf = leaf_hash(TD_LEAVES[index])
    assert tree.inclusion_proof(index, size) == proof
    verify_inclusion(leaf, index, size, proof, rt)
    # The corruption probes of transparency-dev's corruptInclusionProof.
    probes: list[tuple[int, int, bytes, bytes, list[bytes]]] = [
        (index - 1, size, leaf, rt, proof),
        (index + 1, size, leaf, rt, proof),
        (index ^ 2, size, leaf, rt, proof),
        (index, size * 2, leaf, rt, proof),
        (index, size // 2, leaf, rt, proof),
        (index, size, leaf_hash(b"WrongLeaf"), rt, proof),
        (index, size, leaf, EMPTY_ROOT, proof),
        (index, size, leaf, SOME_HASH, proof),
        (index, size, leaf, rt, [*proof, b""]),
        (index, size, leaf, rt, [*proof, rt]),
        (index, size, leaf, rt, [b"", *proof]),
        (index, size, leaf, rt, [rt, *proof]),
        (index, size, leaf, rt, proof[:-1]),
        (index, size, leaf, rt, [proof[0], SOME_HASH, *proof[1:]]),
    ]
    probes += [
        (index, size, leaf, rt, [*proof[:i], bytes([p[0] ^ 8]) + p[1:], *proof[i + 1 :]])
        for i, p in enumerate(proof)
    ]
    for i, n, lf, r, p in probes:
        with pytest.raises(ProofError):
            verify_inclusion(LeafHash(lf), i, n, p, r)


@pytest.mark.parametrize(("m", "n", "proof_hex"), TD_CONSISTENCY)
def test_transparency_dev_consistency(m: int, n: int, proof_hex: list[str]) -> None:
    tree = MemoryTree.from_entries(TD_LEAVES)
    proof, r1, r2 = [h(x) for x in proof_hex], TD_ROOTS[m], TD_ROOTS[n]
    assert tree.consistency_proof(m, n) == proof
    verify_consistency(m, n, r1, r2, proof)
    # The corruption probes of transparency-dev's corruptConsistencyProof.
    probes: list[tuple[int, int, bytes, bytes, list[bytes]]] = [
        (m - 1, n, r1, r2, proof),
        (m + 1, n, r1, r2, proof),
        (m ^ 2, n, r1, r2, proof),
        (m, n * 2, r1, r2, proof),
        (m, n // 2, r1, r2, proof),
        (m, n, b"WrongRoot", r2, proof),
        (m, n, r1, b"WrongRoot", proof),
        (m, n, r2, r1, proof),
        (m, n, r1, r2, []),
        (m, n, r1, r2, [*proof, b""]),
        (m, n, r1, r2, [*proof, r1]),
        (m, n, r1, r2, [*proof, r2]),
        (m, n, r1, r2, [b"", *proof]),
        (m, n, r1, r2, [r1, *proof]),
        (m, n, r1, r2, [r2, *proof]),
        (m, n, r1, r2, [proof[0], *proof]),
        (m, n, r1, r2, proof[:-1]),
    ]
    probes += [
        (m, n, r1, r2, [*proof[:i], bytes([p[0] ^ 16]) + p[1:], *proof[i + 1 :]])
        for i, p in enumerate(proof)
    ]
    for a, b, x, y, p in probes:
        with pytest.raises(ProofError):
            verify_consistency(a, b, x, y, p)


@pytest.mark.parametrize(
    ("m", "n", "r1", "r2", "proof", "ok"),
    [
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, [], True),
        (0, 1, EMPTY_ROOT, TD_ROOTS[1], [], True),
        (1, 1, TD_ROOTS[1], TD_ROOTS[1], [], True),
        (0, 0, EMPTY_ROOT, SOME_HASH, [], False),
        (1, 1, TD_ROOTS[1], SOME_HASH, [], False),
        (1, 0, TD_ROOTS[1], EMPTY_ROOT, [], False),
        (2, 1, TD_ROOTS[2], TD_ROOTS[1], [], False),
        (1, 2, TD_ROOTS[1], TD_ROOTS[2], [], False),
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
        (0, 1, EMPTY_ROOT, TD_ROOTS[1], [EMPTY_ROOT], False),
        (1, 1, TD_ROOTS[1], TD_ROOTS[1], [EMPTY_ROOT], False),
        # Stricter than transparency-dev: the empty tree has exactly one root.
        (0, 1, SOME_HASH, TD_ROOTS[1], [], False),
    ],
)
def test_consistency_trivial_cases(
    m: int, n: int, r1: bytes, r2: bytes, proof: list[bytes], ok: bool
) -> None:
    if ok:
        verify_consistency(m, n, r1, r2, proof)
    else:
        with pytest.raises(ProofError):
            verify_consistency(m, n, r1, r2, proof)


# --- properties up to MAX leaves ------------------------------------------------------

sizes = st.integers(min_value=0, max_value=MAX)
positive_sizes = st.integers(min_value=1, max_value=MAX)


@given(sizes)
def test_root_is_naive_mth(n: int) -> None:
    assert TREE.root(n) == naive_root(n)


def test_roots_match_pymerkle_for_every_size() -> None:
    tree = pymerkle_tree()
    assert all(TREE.root(n) == tree.get_root(n) for n in range(MAX + 1))


@given(st.data())
def test_inclusion_proofs_verify_and_match_pymerkle(data: st.DataObject) -> None:
    n = data.draw(positive_sizes)
    i = data.draw(st.integers(min_value=0, max_value=n - 1))
    proof = TREE.inclusion_proof(i, n)
    verify_inclusion(leaf_hash(ENTRIES[i]), i, n, proof, naive_root(n))
    theirs = pymerkle_tree().prove_inclusion(i + 1, n)  # pymerkle counts from 1
    assert theirs.path[0] == leaf_hash(ENTRIES[i])
    assert list(theirs.path[1:]) == proof


@given(st.data())
def test_consistency_proofs_verify(data: st.DataObject) -> None:
    n = data.draw(sizes)
    m = data.draw(st.integers(min_value=0, max_value=n))
    proof = TREE.consistency_proof(m, n)
    verify_consistency(m, n, naive_root(m), naive_root(n), proof)
    if m > 0:
        theirs = pymerkle_tree().prove_consistency(m, n)
        pymerkle_verify_consistency(naive_root(m), naive_root(n), theirs)


def test_every_proof_up_to_64_leaves() -> None:
    for n in range(65):
        for i in range(n):
            verify_inclusion(TREE.leaf(i), i, n, TREE.inclusion_proof(i, n), naive_root(n))
        for m in range(n + 1):
            proof = TREE.consistency_proof(m, n)
            verify_consistency(m, n, naive_root(m), naive_root(n), proof)


# --- named mutations ----------------------------------------------------------------------

InclusionCase = tuple[LeafHash, int, int, list[bytes], bytes]
ConsistencyCase = tuple[int, int, bytes, bytes, list[bytes]]


def _other_index(i: int, n: int) -> int:
    return (i + 1) % n


INCLUSION_MUTATIONS: dict[str, Callable[[InclusionCase], InclusionCase]] = {
    "wrong-leaf": lambda c: (leaf_hash(b"not in the log"), c[1], c[2], c[3], c[4]),
    "wrong-index": lambda c: (c[0], _other_index(c[1], c[2]), c[2], c[3], c[4]),
    "wrong-root": lambda c: (c[0], c[1], c[2], c[3], SOME_HASH),
    "doubled-size": lambda c: (c[0], c[1], c[2] * 2, c[3], c[4]),
    "halved-size": lambda c: (c[0], c[1], c[2] // 2, c[3], c[4]),
    "truncated-proof": lambda c: (c[0], c[1], c[2], c[3][:-1], c[4]),
    "extended-proof": lambda c: (c[0], c[1], c[2], [*c[3], SOME_HASH], c[4]),
    "flipped-bit": lambda c: (c[0], c[1], c[2], [flip_bit(c[3][0], 5), *c[3][1:]], c[4]),
    "short-element": lambda c: (c[0], c[1], c[2], [c[3][0][:31], *c[3][1:]], c[4]),
    "index-beyond-size": lambda c: (c[0], c[2], c[2], c[3], c[4]),
    "negative-index": lambda c: (c[0], -1, c[2], c[3], c[4]),
}


@pytest.mark.parametrize("mutation", sorted(INCLUSION_MUTATIONS))
@given(st.data())
def test_inclusion_mutation_is_rejected(mutation: str, data: st.DataObject) -> None:
    n = data.draw(st.integers(min_value=2, max_value=MAX))
    i = data.draw(st.integers(min_value=0, max_value=n - 1))
    case = (TREE.leaf(i), i, n, TREE.inclusion_proof(i, n), naive_root(n))
    verify_inclusion(*case)
    mutated = INCLUSION_MUTATIONS[mutation](case)
    with pytest.raises(ProofError):
        verify_inclusion(*mutated)


CONSISTENCY_MUTATIONS: dict[str, Callable[[ConsistencyCase], ConsistencyCase]] = {
    "swapped-roots": lambda c: (c[0], c[1], c[3], c[2], c[4]),
    "wrong-old-root": lambda c: (c[0], c[1], SOME_HASH, c[3], c[4]),
    "wrong-new-root": lambda c: (c[0], c[1], c[2], SOME_HASH, c[4]),
    "wrong-old-size": lambda c: (c[0] + 1, c[1], c[2], c[3], c[4]),
    "doubled-new-size": lambda c: (c[0], c[1] * 2, c[2], c[3], c[4]),
    "truncated-proof": lambda c: (c[0], c[1], c[2], c[3], c[4][:-1]),
    "extended-proof": lambda c: (c[0], c[1], c[2], c[3], [*c[4], SOME_HASH]),
    "empty-proof": lambda c: (c[0], c[1], c[2], c[3], []),
    "flipped-bit": lambda c: (c[0], c[1], c[2], c[3], [*c[4][:-1], flip_bit(c[4][-1], 200)]),
    "old-bigger-than-new": lambda c: (c[1], c[0], c[3], c[2], c[4]),
}


@pytest.mark.parametrize("mutation", sorted(CONSISTENCY_MUTATIONS))
@given(st.data())
def test_consistency_mutation_is_rejected(mutation: str, data: st.DataObject) -> None:
    n = data.draw(st.integers(min_value=2, max_value=MAX))
    m = data.draw(st.integers(min_value=1, max_value=n - 1))
    case = (m, n, naive_root(m), naive_root(n), TREE.consistency_proof(m, n))
    verify_consistency(*case)
    mutated = CONSISTENCY_MUTATIONS[mutation](case)
    assume(mutated != case)
    with pytest.raises(ProofError):
        verify_consistency(*mutated)


def test_a_root_does_not_commit_to_the_tree_size() -> None:
    """Known RFC 9162 property, hence no "size + 1" mutation above: a tree of 3 leaves and
    a claimed tree of 4 share proof shapes, so the same proof verifies for both sizes.
    Sizes are bound by the signed checkpoint, never by a proof alone."""
    rt = naive_root(3)
    verify_inclusion(TREE.leaf(0), 0, 3, TREE.inclusion_proof(0, 3), rt)
    verify_inclusion(TREE.leaf(0), 0, 4, TREE.inclusion_proof(0, 3), rt)
    verify_consistency(1, 4, naive_root(1), rt, TREE.consistency_proof(1, 3))


@pytest.mark.parametrize(
    ("args", "what"),
    [
        ((b"x" * 32, 0, 1, [], b"x" * 31), "short-root"),
        ((b"x" * 31, 0, 1, [], b"x" * 32), "short-leaf"),
        ((b"x" * 32, 0, 0, [], EMPTY_ROOT), "empty-tree"),
        ((b"x" * 32, True, 2, [b"y" * 32], b"x" * 32), "bool-index"),
        ((b"x" * 32, 0, 2**64, [b"y" * 32] * 64, b"x" * 32), "huge-size"),
        ((b"x" * 32, 0, 2, ["y" * 32], b"x" * 32), "str-element"),
    ],
)
def test_inclusion_shape_is_checked_before_hashing(
    args: tuple[bytes, int, int, list[bytes], bytes], what: str
) -> None:
    with pytest.raises(ProofError):
        verify_inclusion(LeafHash(args[0]), args[1], args[2], args[3], args[4])


def test_proof_generation_rejects_bad_requests() -> None:
    with pytest.raises(ProofError):
        TREE.inclusion_proof(5, 5)
    with pytest.raises(ProofError):
        TREE.consistency_proof(6, 5)
    with pytest.raises(ProofError):
        TREE.inclusion_proof(0, MAX + 1)
    with pytest.raises(ProofError):
        root(-1, TREE)
    with pytest.raises(LookupError):
        MemoryTree.from_entries([b"a", b"b", b"c"]).get_nodes([(2, 0)])


# --- cost: O(log n) node reads in one batch ------------------------------------------------


class SyntheticReader:
    """A consistent tree of any size without building it.

    Leaf ``i`` is ``leaf_hash(b"%d" % (i % 16))``; leaves repeat every 16, so every perfect
    subtree above level 4 at a given level has the same hash and each node costs at most
    a few dozen hashes.  Counts every coordinate read and every call.
    """

    PERIOD_LEVEL = 4

    def __init__(self) -> None:
        self.calls = 0
        self.reads = 0

    @functools.cache  # noqa: B019 - a handful of instances in tests
    def node(self, level: int, index: int) -> bytes:
        if level == 0:
            return leaf_hash(b"%d" % (index % (1 << self.PERIOD_LEVEL)))
        if level > self.PERIOD_LEVEL:
            index = 0
        return node_hash(self.node(level - 1, 2 * index), self.node(level - 1, 2 * index + 1))

    def get_nodes(self, coords: Sequence[Coord]) -> list[bytes]:
        self.calls += 1
        self.reads += len(coords)
        return [self.node(level, index) for level, index in coords]


N_BIG = 1_000_003  # binary 11110100001001000011: a ragged right edge
LOG_N = N_BIG.bit_length()  # 20


@pytest.mark.parametrize("index", [0, 1, 17, 524_287, 524_288, 999_999, N_BIG - 2, N_BIG - 1])
def test_inclusion_proof_reads_are_logarithmic(index: int) -> None:
    reader = SyntheticReader()
    proof = inclusion_proof(index, N_BIG, reader)
    assert reader.calls == 1
    assert reader.reads <= 2 * LOG_N
    rt = root(N_BIG, SyntheticReader())
    verify_inclusion(LeafHash(reader.node(0, index)), index, N_BIG, proof, rt)


@pytest.mark.parametrize("old", [1, 2, 3, 1000, 524_288, 524_289, 999_999, N_BIG - 1])
def test_consistency_proof_reads_are_logarithmic(old: int) -> None:
    reader = SyntheticReader()
    proof = consistency_proof(old, N_BIG, reader)
    assert reader.calls == 1
    assert reader.reads <= 2 * LOG_N
    verify_consistency(old, N_BIG, root(old, reader), root(N_BIG, reader), proof)


def test_root_reads_one_node_per_set_bit() -> None:
    reader = SyntheticReader()
    root(N_BIG, reader)
    assert (reader.calls, reader.reads) == (1, N_BIG.bit_count())


def test_synthetic_reader_is_a_real_tree() -> None:
    reader = SyntheticReader()
    entries = [b"%d" % (i % 16) for i in range(100)]
    assert root(100, reader) == naive_mth(entries)


# --- Frontier ---------------------------------------------------------------------------


def test_frontier_reports_every_completed_node() -> None:
    frontier = Frontier()
    stored: dict[Coord, bytes] = {}
    for n, e in enumerate(ENTRIES[:100], start=1):
        for level, index, node in frontier.append(leaf_hash(e)):
            assert (level, index) not in stored
            stored[(level, index)] = node
        assert frontier.size == n
        assert frontier.root() == naive_root(n)
    assert stored == {c: TREE.get_nodes([c])[0] for c in stored}
    # Exactly the perfect subtrees of 100 leaves: 100 + 50 + 25 + 12 + 6 + 3 + 1.
    assert len(stored) == 197


def test_frontier_append_of_a_power_of_two_completes_a_column() -> None:
    frontier = Frontier()
    completed = []
    for e in ENTRIES[:8]:
        completed = frontier.append(leaf_hash(e))
    assert [(lv, ix) for lv, ix, _ in completed] == [(0, 7), (1, 3), (2, 1), (3, 0)]
    assert completed[-1][2] == naive_root(8)


@given(sizes)
def test_frontier_from_reader_resumes(n: int) -> None:
    frontier = Frontier.from_reader(n, TREE)
    assert frontier.size == n
    assert frontier.root() == naive_root(n)
    if n < MAX:
        frontier.append(leaf_hash(ENTRIES[n]))
        assert frontier.root() == naive_root(n + 1)


def test_frontier_copy_is_independent() -> None:
    frontier = Frontier.from_reader(10, TREE)
    other = frontier.copy()
    other.append(leaf_hash(b"x"))
    assert (frontier.size, other.size) == (10, 11)
    assert frontier.root() == naive_root(10)


def test_frontier_rejects_a_short_leaf() -> None:
    with pytest.raises(ValueError):
        Frontier().append(LeafHash(b"short"))


def test_memory_tree_basics() -> None:
    tree = MemoryTree()
    assert (tree.size, tree.root()) == (0, EMPTY_ROOT)
    assert tree.append(b"a") == 0
    assert tree.append_leaf(leaf_hash(b"b")) == 1
    assert tree.leaf(1) == leaf_hash(b"b")
    assert tree.root() == naive_mth([b"a", b"b"]) == tree.root(2)
    assert tree.consistency_proof(1) == [leaf_hash(b"b")]
    assert tree.frontier().root() == tree.root()
    with pytest.raises(ProofError):
        tree.leaf(2)
