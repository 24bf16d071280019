"""tlog-tiles paths, widths and bundles (protocol.tiles)."""

from __future__ import annotations

import pytest

from protocol import merkle
from protocol.errors import ProtocolError
from protocol.tiles import (
    ENTRIES,
    decode_bundle,
    encode_bundle,
    encode_index,
    parse_tile_path,
    split_hashes,
    subtree_root,
    tile_path,
    tile_width,
    tree_root,
)


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "000"), (5, "005"), (999, "999"), (1000, "x001/000"), (1234067, "x001/x234/067")],
)
def test_index_groups_of_three_digits(n: int, text: str) -> None:
    assert encode_index(n) == text
    assert parse_tile_path(f"tile/0/{text}") == (0, n, 256)


def test_paths_round_trip() -> None:
    assert tile_path(1, 1234067, 7) == "tile/1/x001/x234/067.p/7"
    assert parse_tile_path("tile/entries/x001/000.p/255") == (ENTRIES, 1000, 255)
    assert parse_tile_path(tile_path(ENTRIES, 3)) == (ENTRIES, 3, 256)


@pytest.mark.parametrize(
    "path",
    [
        "tile/0/1",  # not padded
        "tile/0/0005",
        "tile/0/x000/005",  # a leading zero group
        "tile/0/001/000",  # the x prefix missing
        "tile/00/000",
        "tile/8/000",  # above the top level
        "tile/0/000.p/256",
        "tile/0/000.p/0",
        "tile/0/000.p/07",
        "tile/0/000.p/",
        "tile/entries/",
        "tile/-1/000",
        "tiles/0/000",
        "tile/0/" + "x123/" * 10 + "000",  # past 2**63 - 1
    ],
)
def test_only_the_canonical_path_is_accepted(path: str) -> None:
    with pytest.raises(ProtocolError):
        parse_tile_path(path)


def test_width_follows_the_tree_size() -> None:
    assert tile_width(0, 0, 0) == 0
    assert tile_width(0, 0, 5) == 5
    assert tile_width(0, 0, 300) == 256 and tile_width(0, 1, 300) == 44
    assert tile_width(1, 0, 300) == 1  # one perfect subtree of 256 leaves
    assert tile_width(1, 0, 255) == 0
    assert tile_width(0, 2, 300) == 0


def test_tiles_rebuild_the_tree() -> None:
    tree = merkle.MemoryTree.from_entries([b"e%d" % i for i in range(300)])
    leaves = [tree.leaf(i) for i in range(300)]
    assert tree_root(leaves) == tree.root()
    assert subtree_root(leaves[:256]) == tree.get_nodes([(8, 0)])[0]
    assert tree_root([]) == merkle.EMPTY_ROOT


def test_bundles_round_trip_and_refuse_cuts() -> None:
    entries = [b"", b"a", b"x" * 65535]
    data = encode_bundle(entries)
    assert decode_bundle(data, 3) == entries
    for cut in (1, 3, len(data) - 1):
        with pytest.raises(ProtocolError):
            decode_bundle(data[:cut], 3)
    with pytest.raises(ProtocolError):
        decode_bundle(data, 2)
    with pytest.raises(ProtocolError):
        encode_bundle([b"x" * 65536])
    with pytest.raises(ProtocolError):
        split_hashes(b"\x00" * 33, 1)
