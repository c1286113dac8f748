"""The tree's arithmetic against an independent RFC 9162 implementation (pymerkle), and its proofs
against the standalone verifier, for every tree size and leaf up to 70 and a few larger ones."""

from __future__ import annotations

import hashlib

import pytest
from pymerkle import InmemoryTree

from gateway.merkle import (
    TILE_NODES,
    compact,
    consistency_ranges,
    fold,
    hash_function,
    in_tile,
    inclusion_ranges,
    leaf_hash,
    node_id,
    range_nodes,
    root_nodes,
    subtrees,
    tile_nodes,
    tile_of,
)
from gateway.verify_receipt import verify_consistency, verify_inclusion

H = hash_function("sha256")


def _tree(count: int) -> tuple[dict[int, bytes], list[bytes], InmemoryTree]:
    """Every stored node of a tree of ``count`` leaves grown one leaf at a time, and pymerkle's tree."""
    entries = [f"entry {n}".encode() for n in range(count)]
    stack: list[tuple[int, int, bytes]] = []
    made: list[tuple[int, bytes]] = []
    for n, entry in enumerate(entries):
        made.append((node_id((0, n)), leaf_hash(H, entry)))  # leaves are kept by their entries
        compact(H, stack, [leaf_hash(H, entry)], n, made)
    theirs = InmemoryTree(algorithm="sha256")
    for entry in entries:
        theirs.append_entry(entry)
    return dict(made), entries, theirs


def _range_hash(nodes: dict[int, bytes], start: int, end: int) -> bytes:
    return fold(H, [nodes[node_id(n)] for n in range_nodes(start, end)])


NODES, ENTRIES, THEIRS = _tree(70)


@pytest.mark.parametrize("size", range(1, 71))
def test_roots_equal_an_independent_implementation(size: int) -> None:
    assert _range_hash(NODES, 0, size) == THEIRS.get_root(size)
    assert fold(H, [NODES[node_id(n)] for n in root_nodes(size)]) == THEIRS.get_root(size)


def test_the_leaf_and_node_hashes_are_rfc_9162s() -> None:
    assert leaf_hash(H, b"x") == hashlib.sha256(b"\x00x").digest()
    pair = leaf_hash(H, ENTRIES[0]) + leaf_hash(H, ENTRIES[1])
    assert NODES[node_id((1, 0))] == hashlib.sha256(b"\x01" + pair).digest()


@pytest.mark.parametrize("size", [*range(1, 40), 64, 65, 70])
def test_every_inclusion_proof_verifies_and_a_wrong_one_does_not(size: int) -> None:
    root = THEIRS.get_root(size)
    for index in range(size):
        path = [_range_hash(NODES, a, b) for a, b in inclusion_ranges(index, size)]
        leaf = leaf_hash(H, ENTRIES[index])
        assert verify_inclusion(H, index, size, leaf, path, root)
        theirs = THEIRS.prove_inclusion(index + 1, size).serialize()["path"]
        assert sorted(bytes.fromhex(p) for p in theirs if bytes.fromhex(p) != leaf) == sorted(path)
        assert not verify_inclusion(H, index, size, leaf_hash(H, b"altered"), path, root)
        if path:
            assert not verify_inclusion(H, index, size, leaf, path[:-1], root)
            assert not verify_inclusion(H, (index + 1) % size, size, leaf, path, root) or size == 1


@pytest.mark.parametrize("second", [*range(1, 40), 64, 65, 70])
def test_every_consistency_proof_verifies_and_a_forked_one_does_not(second: int) -> None:
    for first in range(1, second + 1):
        proof = [_range_hash(NODES, a, b) for a, b in consistency_ranges(first, second)] if first < second else []
        first_root, second_root = THEIRS.get_root(first), THEIRS.get_root(second)
        assert verify_consistency(H, first, second, first_root, second_root, proof)
        if first < second:
            assert not verify_consistency(H, first, second, H(b"forked"), second_root, proof)
            assert not verify_consistency(H, first, second, first_root, H(b"rewritten"), proof)


@pytest.mark.parametrize(("first", "count"), [(0, 1), (0, 7), (0, 64), (0, 70), (64, 1), (64, 33), (128, 128)])
def test_subtrees_made_a_level_at_a_time_are_the_border_made_a_leaf_at_a_time(first: int, count: int) -> None:
    leaves = [leaf_hash(H, f"{n}".encode()) for n in range(count)]
    border: list[tuple[int, int, bytes]] = []
    compact(H, border, leaves, first)
    assert subtrees(H, leaves, first) == border


def test_subtrees_from_anywhere_are_the_ranges_nodes_with_their_hashes() -> None:
    """A stretch starting mid-subtree (the first after entries pruned) gives the nodes of its range."""
    for start in range(70):
        for end in range(start + 1, 71):
            got = subtrees(H, [NODES[node_id((0, n))] for n in range(start, end)], start)
            assert [(level, index) for level, index, _ in got] == range_nodes(start, end), (start, end)
            assert [value for *_, value in got] == [NODES[node_id(n)] for n in range_nodes(start, end)]


def test_proofs_are_logarithmic() -> None:
    assert len(inclusion_ranges(123_456, 1_000_000)) <= 20
    assert len(consistency_ranges(123_456, 1_000_000)) <= 2 * 20
    with pytest.raises(ValueError, match="not in a tree"):
        inclusion_ranges(5, 5)


def test_a_tile_holds_its_nodes_where_in_tile_finds_them() -> None:
    tree, _, theirs = _tree(600)
    for tier, leaf in ((0, 0), (0, 37), (1, 0), (1, 300)):
        tile = tile_of(tier, leaf)
        row = b"".join(tree[node_id(n)] for n in tile_nodes(tile))
        assert len(row) == 32 * TILE_NODES
        held = set(tile_nodes(tile))
        for node in held:
            assert in_tile(row, tile, node) == tree[node_id(node)]
        for node in ((4 * tier + 4, 0), (4 * tier, (leaf >> (4 * tier)) + 16)):  # its root; a tile beside it
            assert node not in held and in_tile(row, tile, node) is None
    assert theirs.get_root(512) == tree[node_id((9, 0))]
