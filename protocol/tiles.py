"""C2SP tlog-tiles: the log as static tiles of stored hashes, and entry bundles.

Pure and sans-IO: paths in, coordinates out; hashes in, roots out.

Theory of operation
-------------------
The tree (RFC 9162, :mod:`protocol.merkle`) is cut into tiles of height
:data:`TILE_HEIGHT` (8 levels) and width up to :data:`TILE_WIDTH` (256 hashes).  Tile
``(L, N)`` holds the hashes of the nodes at tree level ``8 * L``, indices
``N * 256 .. N * 256 + W - 1``: level 0 tiles hold leaf hashes, level 1 tiles the roots of
perfect subtrees of 256 leaves, and so on.  Every such node is a perfect subtree the log
stores once complete and never changes, so a tile is a read of stored hashes and a
tile's bytes never change once its ``W`` hashes exist:

* a *full* tile (``W = 256``) is immutable and served with a long cache lifetime;
* a *partial* tile ``.p/W`` (``1 <= W <= 255``) exists at the right edge while the tree
  grows; its bytes are fixed too, but it is superseded by wider ones and may stop being
  served, so it is cached briefly.

Entry bundle ``N`` holds entries ``N * 256 ..`` (same widths), each as a big-endian
``uint16`` length followed by the entry's bytes (canonical JSON).  An entry longer than
65,535 bytes cannot be put in a bundle (:func:`encode_bundle` raises); such entries are
read from ``/v1/log/entries`` instead, and hash tiles still cover them.

Paths (``tile/<L>/<N>[.p/<W>]``, ``tile/entries/<N>[.p/<W>]``): ``N`` is written in
groups of three decimal digits, every group but the last prefixed with ``x``
(``1234067`` is ``x001/x234/067``).  :func:`parse_tile_path` accepts exactly the
encoding :func:`tile_path` produces, nothing else (no leading zeros beyond the group
padding, no empty groups, no ``.p/256``).

A monitor rebuilds the tree from level-0 tiles (:func:`tree_root`) and checks it against
a checkpoint signed by the log; higher tiles are checked against the lower ones
(:func:`subtree_root`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from protocol.errors import BadValueError, MalformedError
from protocol.merkle import HASH_LEN, MAX_TREE_SIZE, Coord, MemoryTree, node_hash

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
MAX_TILE_LEVEL = 63 // TILE_HEIGHT
"""Tiles above this level would hold nodes above level 63, which no tree of at most
2**63 - 1 leaves has."""
MAX_BUNDLE_ENTRY = 0xFFFF
ENTRIES = "entries"
"""The level name of entry bundles in a path."""

_GROUP = re.compile(r"^(?:x\d{3}/)*\d{3}$")


def encode_index(n: int) -> str:
    """``N`` as path groups of three digits, all but the last prefixed with ``x``."""
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_TREE_SIZE:
        raise BadValueError("tile index out of range")
    digits = str(n)
    digits = "0" * (-len(digits) % 3) + digits
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    return "/".join([f"x{g}" for g in groups[:-1]] + groups[-1:])


def decode_index(text: str) -> int:
    """The inverse of :func:`encode_index`, refusing every other spelling."""
    if not _GROUP.fullmatch(text):
        raise MalformedError("tile index is not in x000/000 form")
    n = int(text.replace("x", "").replace("/", ""))
    if n > MAX_TREE_SIZE or encode_index(n) != text:
        raise MalformedError("tile index is not canonically encoded")
    return n


def tile_path(level: int | str, index: int, width: int = TILE_WIDTH) -> str:
    """``tile/<L>/<N>[.p/<W>]`` (``level`` :data:`ENTRIES` for an entry bundle)."""
    if not 1 <= width <= TILE_WIDTH:
        raise BadValueError("tile width out of range")
    if level != ENTRIES and not (isinstance(level, int) and 0 <= level <= MAX_TILE_LEVEL):
        raise BadValueError("tile level out of range")
    tail = "" if width == TILE_WIDTH else f".p/{width}"
    return f"tile/{level}/{encode_index(index)}{tail}"


def parse_tile_path(path: str) -> tuple[int | str, int, int]:
    """``(level, index, width)`` of a path :func:`tile_path` would produce."""
    if not path.startswith("tile/") or len(path) > 200:
        raise MalformedError("not a tile path")
    head, _, rest = path[5:].partition("/")
    if head == ENTRIES:
        level: int | str = ENTRIES
    elif head.isdigit() and head == str(int(head)) and int(head) <= MAX_TILE_LEVEL:
        level = int(head)
    else:
        raise MalformedError("tile level is not a decimal level")
    width = TILE_WIDTH
    if ".p/" in rest:
        rest, _, w = rest.partition(".p/")
        if not (w.isdigit() and w == str(int(w)) and 1 <= int(w) < TILE_WIDTH):
            raise MalformedError("partial tile width must be 1..255")
        width = int(w)
    return level, decode_index(rest), width


def tile_width(level: int, index: int, size: int) -> int:
    """How many hashes tile ``(level, index)`` holds in a tree of ``size`` (0: none yet,
    at most :data:`TILE_WIDTH`)."""
    nodes = size >> (TILE_HEIGHT * level)
    return max(0, min(TILE_WIDTH, nodes - index * TILE_WIDTH))


def tile_coords(level: int, index: int, width: int) -> list[Coord]:
    """The stored nodes, in order, whose hashes make up the tile."""
    base = index * TILE_WIDTH
    return [(TILE_HEIGHT * level, base + i) for i in range(width)]


def split_hashes(data: bytes, width: int) -> list[bytes]:
    """A tile's bytes as ``width`` hashes (a tile of another length is refused)."""
    if len(data) != width * HASH_LEN:
        raise MalformedError(f"tile of width {width} must be {width * HASH_LEN} bytes")
    return [data[i : i + HASH_LEN] for i in range(0, len(data), HASH_LEN)]


def subtree_root(hashes: Sequence[bytes]) -> bytes:
    """The root over a full tile's 256 hashes: the node one tile level up."""
    if len(hashes) != TILE_WIDTH:
        raise BadValueError("a subtree root needs a full tile")
    level = list(hashes)
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def tree_root(leaf_hashes: Sequence[bytes]) -> bytes:
    """The RFC 9162 root over all leaf hashes (the level-0 tiles, concatenated)."""
    tree = MemoryTree()
    for leaf in leaf_hashes:
        tree.append_leaf(leaf)  # type: ignore[arg-type]
    return tree.root()


def encode_bundle(entries: Sequence[bytes]) -> bytes:
    """Entries as an entry bundle: each a big-endian uint16 length, then its bytes."""
    out = bytearray()
    for entry in entries:
        if len(entry) > MAX_BUNDLE_ENTRY:
            raise BadValueError("entry too long for an entry bundle (65,535 bytes at most)")
        out += len(entry).to_bytes(2, "big") + entry
    return bytes(out)


def decode_bundle(data: bytes, width: int) -> list[bytes]:
    """The ``width`` entries of a bundle; a bundle with more, fewer or a cut entry is
    refused."""
    out: list[bytes] = []
    pos = 0
    while pos < len(data):
        if pos + 2 > len(data):
            raise MalformedError("entry bundle ends inside a length")
        n = int.from_bytes(data[pos : pos + 2], "big")
        if pos + 2 + n > len(data):
            raise MalformedError("entry bundle ends inside an entry")
        out.append(data[pos + 2 : pos + 2 + n])
        pos += 2 + n
    if len(out) != width:
        raise MalformedError(f"entry bundle holds {len(out)} entries, not {width}")
    return out
