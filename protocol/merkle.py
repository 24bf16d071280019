"""RFC 9162 Merkle tree: hashing, proofs from stored perfect subtrees, verification.

Theory of operation
===================

Hashing (RFC 9162 §2.1.1): ``leaf_hash(e) = SHA-256(0x00 || e)``, ``node_hash(l, r) =
SHA-256(0x01 || l || r)`` and the empty tree's root is ``SHA-256("")``.  The tree over
``n`` leaves splits at ``k``, the largest power of two below ``n``: MTH(D[0:n]) =
node_hash(MTH(D[0:k]), MTH(D[k:n])).

Storage.  A log is append-only, so a *perfect* subtree, once complete, never changes.
The writer stores exactly those: node ``(level, index)`` is the root of the perfect
subtree over leaves ``[index * 2**level, (index + 1) * 2**level)``; level 0 holds the
leaf hashes.  Every subtree the RFC recursion visits starts at a multiple of the next
power of two at or above its width, so it is the fold, right to left, of the perfect
subtrees of its width's binary decomposition (largest first).  At most one subtree of a
proof (the sibling on the right edge) is not itself perfect, so a root costs
``popcount(n)`` node reads and an inclusion or consistency proof ``O(log n)``, all
fetched by one :meth:`NodeReader.get_nodes` call.

:class:`Frontier` is the writer's O(log n) view of the right edge: the perfect subtrees
of the current size's binary decomposition.  Appending a leaf merges equal-sized
neighbours and reports every node it completed so the caller can store them in the same
transaction.  :class:`MemoryTree` keeps all perfect nodes in a dict (tests, clients,
auditors).

Verification (:func:`verify_inclusion`, :func:`verify_consistency`) follows RFC 9162
§2.1.3.2 and §2.1.4.2, after checking sizes, proof length and element lengths *before*
any hashing (as transparency-dev/merkle does): a proof of the wrong length never
reaches the hash loop.  Verifiers return ``None`` or raise :class:`ProofError`.

This module is sans-IO: no storage, clock or randomness.  A reader that lacks a node
raises :class:`LookupError`; that is a programming or storage error (asking for a tree
larger than the one stored) and is deliberately not turned into a :class:`ProofError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NewType, Protocol

from protocol import crypto
from protocol.errors import ProofError

LeafHash = NewType("LeafHash", bytes)
"""SHA-256(0x00 || entry): the level-0 node of an entry."""

HASH_LEN = crypto.HASH_LEN
MAX_TREE_SIZE = 2**63 - 1
"""Largest tree size accepted anywhere (keeps arithmetic on hostile sizes cheap)."""

EMPTY_ROOT: bytes = crypto.sha256(b"")
"""Root of the empty tree: SHA-256 of the empty string (RFC 9162 §2.1.1)."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

Coord = tuple[int, int]
"""``(level, index)`` of a perfect subtree: leaves ``[index << level, (index + 1) << level)``."""


def leaf_hash(entry: bytes) -> LeafHash:
    """Hash a log entry into its leaf: SHA-256(0x00 || entry)."""
    return LeafHash(crypto.sha256(_LEAF_PREFIX, entry))


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash two child nodes: SHA-256(0x01 || left || right)."""
    return crypto.sha256(_NODE_PREFIX, left, right)


class NodeReader(Protocol):
    """Batch access to stored perfect-subtree hashes.

    ``get_nodes`` returns the hashes of the given ``(level, index)`` coordinates in the
    same order.  A missing node raises :class:`LookupError` (a programming or storage
    error, which the functions here let propagate).
    """

    def get_nodes(self, coords: Sequence[Coord]) -> Sequence[bytes]: ...


# --- tree geometry --------------------------------------------------------------------


def _largest_power_of_two_below(n: int) -> int:
    """The ``k`` of RFC 9162: the largest power of two strictly smaller than ``n >= 2``."""
    return 1 << ((n - 1).bit_length() - 1)


def _range_coords(lo: int, hi: int) -> list[Coord]:
    """Perfect subtrees, largest first, whose fold is MTH(D[lo:hi]).

    Valid for every subtree the RFC recursion produces (``lo`` aligned to the power of
    two at or above ``hi - lo``), and for ``[0, n)``.
    """
    coords: list[Coord] = []
    pos = lo
    width = hi - lo
    while width:
        level = width.bit_length() - 1
        coords.append((level, pos >> level))
        pos += 1 << level
        width -= 1 << level
    return coords


def _fold(hashes: Sequence[bytes]) -> bytes:
    """Combine perfect-subtree hashes (largest first) right to left into one root."""
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def _check_size(size: int, what: str) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_TREE_SIZE:
        raise ProofError(f"{what} must be an integer in [0, 2**63 - 1]")


def _inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Leaf ranges of the RFC 9162 §2.1.3.1 PATH(index, D[0:size]), bottom-up."""
    ranges: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _largest_power_of_two_below(hi - lo)
        if index < lo + k:
            ranges.append((lo + k, hi))  # sibling on the right, path goes left
            hi = lo + k
        else:
            ranges.append((lo, lo + k))  # sibling on the left, path goes right
            lo += k
    ranges.reverse()  # the recursion emits the deepest sibling first
    return ranges


def _consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """Leaf ranges of the RFC 9162 §2.1.4.1 PROOF(old_size, D[0:new_size]), in order."""
    ranges: list[tuple[int, int]] = []
    lo, hi, m = 0, new_size, old_size
    complete = True  # the RFC's flag b: is the current subtree one the verifier knows?
    while m != hi - lo:
        k = _largest_power_of_two_below(hi - lo)
        if m <= k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
            m -= k
            complete = False
    if not complete:
        ranges.append((lo, hi))
    ranges.reverse()
    return ranges


def _read_ranges(ranges: Sequence[tuple[int, int]], reader: NodeReader) -> list[bytes]:
    """Hash every range with one batched read of all the perfect subtrees involved."""
    per_range = [_range_coords(lo, hi) for lo, hi in ranges]
    flat = [c for coords in per_range for c in coords]
    if not flat:
        return []
    nodes = list(reader.get_nodes(flat))
    if len(nodes) != len(flat):
        raise LookupError("node reader returned the wrong number of nodes")
    out: list[bytes] = []
    pos = 0
    for coords in per_range:
        out.append(_fold(nodes[pos : pos + len(coords)]))
        pos += len(coords)
    return out


# --- proof generation -----------------------------------------------------------------


def root(size: int, reader: NodeReader) -> bytes:
    """Root hash of the first ``size`` leaves, from ``popcount(size)`` stored nodes."""
    _check_size(size, "tree size")
    if size == 0:
        return EMPTY_ROOT
    return _read_ranges([(0, size)], reader)[0]


def inclusion_proof(index: int, size: int, reader: NodeReader) -> list[bytes]:
    """RFC 9162 §2.1.3.1 inclusion proof (audit path) of leaf ``index`` in a tree of ``size``.

    Raises :class:`ProofError` if ``index`` is not below ``size``.
    """
    _check_size(size, "tree size")
    _check_size(index, "leaf index")
    if index >= size:
        raise ProofError(f"leaf index {index} is not below tree size {size}")
    return _read_ranges(_inclusion_ranges(index, size), reader)


def consistency_proof(old_size: int, new_size: int, reader: NodeReader) -> list[bytes]:
    """RFC 9162 §2.1.4.1 consistency proof between trees of ``old_size`` and ``new_size``.

    Empty when ``old_size`` is 0 or equals ``new_size``.  Raises :class:`ProofError` if
    ``old_size > new_size``.
    """
    _check_size(old_size, "old size")
    _check_size(new_size, "new size")
    if old_size > new_size:
        raise ProofError(f"old size {old_size} is larger than new size {new_size}")
    if old_size in (0, new_size):
        return []
    return _read_ranges(_consistency_ranges(old_size, new_size), reader)


def inclusion_coords(index: int, size: int) -> list[Coord]:
    """The perfect subtrees :func:`inclusion_proof` reads for ``(index, size)``, in the
    order it reads them (a caller that holds some nodes elsewhere, e.g. a cache, fetches
    only the rest).  Raises :class:`ProofError` as :func:`inclusion_proof` does."""
    _check_size(size, "tree size")
    _check_size(index, "leaf index")
    if index >= size:
        raise ProofError(f"leaf index {index} is not below tree size {size}")
    return [c for lo, hi in _inclusion_ranges(index, size) for c in _range_coords(lo, hi)]


def consistency_coords(old_size: int, new_size: int) -> list[Coord]:
    """The perfect subtrees :func:`consistency_proof` reads, as :func:`inclusion_coords`."""
    _check_size(old_size, "old size")
    _check_size(new_size, "new size")
    if old_size > new_size:
        raise ProofError(f"old size {old_size} is larger than new size {new_size}")
    if old_size in (0, new_size):
        return []
    ranges = _consistency_ranges(old_size, new_size)
    return [c for lo, hi in ranges for c in _range_coords(lo, hi)]


# --- verification ---------------------------------------------------------------------


def _check_hash(value: object, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_LEN:
        raise ProofError(f"{what} must be {HASH_LEN} bytes")


def _check_proof(proof: Sequence[bytes], expected: int, what: str) -> None:
    if len(proof) != expected:
        raise ProofError(f"{what} has {len(proof)} hashes, expected {expected}")
    for i, element in enumerate(proof):
        _check_hash(element, f"{what} element {i}")


def _inclusion_proof_len(index: int, size: int) -> int:
    """Length of the audit path: ``inner`` levels below the split plus right-edge ``border``."""
    inner = (index ^ (size - 1)).bit_length()
    border = (index >> inner).bit_count()
    return inner + border


def verify_inclusion(
    leaf: LeafHash, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Verify that ``leaf`` (a leaf *hash*) is at ``index`` in the tree of ``size`` with ``root``.

    RFC 9162 §2.1.3.2.  Returns ``None`` or raises :class:`ProofError`.
    """
    # 1. Shape before hashing: sizes, index, hash lengths, exact proof length.
    _check_size(size, "tree size")
    _check_size(index, "leaf index")
    if index >= size:
        raise ProofError(f"leaf index {index} is not below tree size {size}")
    _check_hash(leaf, "leaf hash")
    _check_hash(root, "root hash")
    _check_proof(proof, _inclusion_proof_len(index, size), "inclusion proof")

    # 2. fn = index, sn = size - 1, r = leaf.
    fn, sn = index, size - 1
    r: bytes = leaf
    # 3. For each proof element p: ...
    for p in proof:
        # 3a. A path longer than the tree is tall cannot verify.
        if sn == 0:
            raise ProofError("inclusion proof is longer than the tree is tall")
        # 3b. p is a left sibling (fn is a right child, or fn is the last node of its
        # level): r = H(p || r), then climb past levels where fn has no right sibling.
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        # 3c. Otherwise p is the right sibling: r = H(r || p).
        else:
            r = node_hash(r, p)
        # 3d. Go up one level.
        fn >>= 1
        sn >>= 1
    # 4. The path must have reached the root, and the result must equal it.
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the tree is tall")
    if not crypto.equal(r, root):
        raise ProofError("inclusion proof does not lead to the root")


def _consistency_proof_len(old_size: int, new_size: int) -> int:
    """Length of PROOF(old_size, D[0:new_size]) for ``0 < old_size < new_size``."""
    shift = (old_size & -old_size).bit_length() - 1  # trailing zeros of old_size
    full = ((old_size - 1) ^ (new_size - 1)).bit_length()
    inner = full - shift
    border = ((old_size - 1) >> full).bit_count()
    start = 0 if old_size == 1 << shift else 1
    return start + inner + border


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Verify that the tree of ``new_size``/``new_root`` extends ``old_size``/``old_root``.

    RFC 9162 §2.1.4.2.  An empty old tree must have root SHA-256("") and an empty proof;
    equal sizes need equal roots and an empty proof.  Returns ``None`` or raises
    :class:`ProofError`.
    """
    # 1. Shape before hashing: sizes, hash lengths, the trivial cases, proof length.
    _check_size(old_size, "old size")
    _check_size(new_size, "new size")
    if old_size > new_size:
        raise ProofError(f"old size {old_size} is larger than new size {new_size}")
    _check_hash(old_root, "old root")
    _check_hash(new_root, "new root")
    if old_size == 0:
        _check_proof(proof, 0, "consistency proof")
        if not crypto.equal(old_root, EMPTY_ROOT):
            raise ProofError("the root of the empty tree must be SHA-256 of nothing")
        if new_size == 0 and not crypto.equal(new_root, EMPTY_ROOT):
            raise ProofError("the root of the empty tree must be SHA-256 of nothing")
        return
    if old_size == new_size:
        _check_proof(proof, 0, "consistency proof")
        if not crypto.equal(old_root, new_root):
            raise ProofError("trees of equal size have different roots")
        return
    _check_proof(proof, _consistency_proof_len(old_size, new_size), "consistency proof")

    # 2. If old_size is a power of two, the old root is the first node of the path.
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    # 3. fn = old_size - 1, sn = new_size - 1.
    fn, sn = old_size - 1, new_size - 1
    # 4. Skip the levels where the old tree's last node is a right child.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5. fr and sr start at the first path node.
    fr = sr = path[0]
    # 6. For each further node c:
    for c in path[1:]:
        # 6a. A path longer than the new tree is tall cannot verify.
        if sn == 0:
            raise ProofError("consistency proof is longer than the tree is tall")
        # 6b. c is a left sibling for both trees.
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        # 6c. c is a right sibling that only the new tree has.
        else:
            sr = node_hash(sr, c)
        # 6d. Go up one level.
        fn >>= 1
        sn >>= 1
    # 7. Both roots must be reproduced and the path must have reached the top.
    if sn != 0:
        raise ProofError("consistency proof is shorter than the tree is tall")
    if not crypto.equal(fr, old_root):
        raise ProofError("consistency proof does not reproduce the old root")
    if not crypto.equal(sr, new_root):
        raise ProofError("consistency proof does not reproduce the new root")


# --- writer side ------------------------------------------------------------------------


class Frontier:
    """The right edge of a tree for its single writer: O(log n) perfect-subtree hashes.

    ``_edge`` holds ``(level, hash)`` of the perfect subtrees of the binary decomposition
    of :attr:`size`, largest first.
    """

    __slots__ = ("_edge", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._edge: list[tuple[int, bytes]] = []

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    def append(self, leaf: LeafHash) -> list[tuple[int, int, bytes]]:
        """Append a leaf hash; return every ``(level, index, hash)`` node it completed.

        The first item is the leaf itself at level 0; each further item is a parent that
        the append made perfect.  The caller stores them all in one transaction.
        """
        if not isinstance(leaf, bytes) or len(leaf) != HASH_LEN:
            raise ValueError("leaf hash must be 32 bytes")  # programming error
        if self._size >= MAX_TREE_SIZE:
            raise ValueError("tree is full")  # programming error
        index = self._size
        completed = [(0, index, bytes(leaf))]
        level, acc = 0, bytes(leaf)
        while self._edge and self._edge[-1][0] == level:
            _, left = self._edge.pop()
            acc = node_hash(left, acc)
            level += 1
            completed.append((level, index >> level, acc))
        self._edge.append((level, acc))
        self._size += 1
        return completed

    def root(self) -> bytes:
        """Root hash of the current tree, in O(log n) hashes."""
        if not self._edge:
            return EMPTY_ROOT
        return _fold([h for _, h in self._edge])

    def copy(self) -> Frontier:
        """An independent copy (e.g. to compute a tentative root before committing)."""
        other = Frontier()
        other._size = self._size
        other._edge = list(self._edge)
        return other

    @classmethod
    def from_reader(cls, size: int, reader: NodeReader) -> Frontier:
        """Rebuild the frontier of a stored tree of ``size`` leaves with one batched read."""
        _check_size(size, "tree size")
        frontier = cls()
        coords = _range_coords(0, size)
        if coords:
            nodes = list(reader.get_nodes(coords))
            if len(nodes) != len(coords):
                raise LookupError("node reader returned the wrong number of nodes")
            for (level, _), h in zip(coords, nodes, strict=True):
                _check_hash(h, "stored node")
                frontier._edge.append((level, bytes(h)))
        frontier._size = size
        return frontier

    def __repr__(self) -> str:
        return f"Frontier(size={self._size})"


class MemoryTree(NodeReader):
    """All perfect nodes of a tree in memory; a :class:`NodeReader` with proof helpers."""

    __slots__ = ("_frontier", "_nodes")

    def __init__(self) -> None:
        self._frontier = Frontier()
        self._nodes: dict[Coord, bytes] = {}

    @classmethod
    def from_entries(cls, entries: Sequence[bytes]) -> MemoryTree:
        """A tree of ``leaf_hash(e)`` for every entry, in order."""
        tree = cls()
        for entry in entries:
            tree.append(entry)
        return tree

    @property
    def size(self) -> int:
        """Number of leaves."""
        return self._frontier.size

    def append(self, entry: bytes) -> int:
        """Append an entry (hashed with :func:`leaf_hash`); return its leaf index."""
        return self.append_leaf(leaf_hash(entry))

    def append_leaf(self, leaf: LeafHash) -> int:
        """Append an already computed leaf hash; return its leaf index."""
        index = self._frontier.size
        for level, idx, h in self._frontier.append(leaf):
            self._nodes[(level, idx)] = h
        return index

    def get_nodes(self, coords: Sequence[Coord]) -> list[bytes]:
        """:class:`NodeReader`: stored hashes; :class:`LookupError` for a missing node."""
        try:
            return [self._nodes[c] for c in coords]
        except KeyError as exc:
            raise LookupError(f"no perfect subtree stored at {exc.args[0]}") from None

    def leaf(self, index: int) -> LeafHash:
        """The leaf hash at ``index``."""
        if not 0 <= index < self.size:
            raise ProofError(f"leaf index {index} is not below tree size {self.size}")
        return LeafHash(self._nodes[(0, index)])

    def root(self, size: int | None = None) -> bytes:
        """Root of the whole tree, or of its first ``size`` leaves."""
        if size is None:
            return self._frontier.root()
        self._check_known(size)
        return root(size, self)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Inclusion proof of leaf ``index`` in the tree of ``size`` (default: current)."""
        size = self.size if size is None else size
        self._check_known(size)
        return inclusion_proof(index, size, self)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Consistency proof from ``old_size`` to ``new_size`` (default: current)."""
        new_size = self.size if new_size is None else new_size
        self._check_known(new_size)
        return consistency_proof(old_size, new_size, self)

    def frontier(self) -> Frontier:
        """A copy of the writer frontier."""
        return self._frontier.copy()

    def _check_known(self, size: int) -> None:
        if size > self.size:
            raise ProofError(f"tree size {size} is beyond the {self.size} leaves known")

    def __repr__(self) -> str:
        return f"MemoryTree(size={self.size})"
