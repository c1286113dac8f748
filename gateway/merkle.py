"""The exchange log as a Merkle tree (RFC 9162 §2.1), as pure functions over node hashes.

Leaves are ``H(0x00 || entry)``, nodes ``H(0x01 || left || right)``, H the log's hash (SM3 or
SHA-256); the leaf of the entry at seq ``s`` has index ``s - 1``. The store keeps the hash of
every complete, aligned subtree — the node at ``level`` and ``index`` covers leaves
``index·2^level`` … ``(index+1)·2^level - 1`` — so that any root, inclusion proof or consistency
proof is a handful of stored nodes folded together, never the tree recomputed. This module says
which nodes each needs (``*_nodes``) and folds them (``fold``); the proofs are checked by the
standalone verifier, ``gateway.verify_receipt``.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence

from cryptography.hazmat.primitives import hashes

__all__ = ["TILE_HEIGHT", "TILE_NODES", "TILE_TIERS", "Hash", "Levels", "Node", "Range", "border", "compact",
           "consistency_ranges", "fold", "hash_function", "in_tile", "inclusion_ranges", "leaf_hash", "node_hash",
           "node_id", "node_levels", "range_nodes", "root_nodes", "stored_hashes", "subtrees", "tile_nodes", "tile_of",
           "tiles_path"]

Hash = Callable[[bytes], bytes]
Node = tuple[int, int]  # level, index
Range = tuple[int, int]  # leaves start … end - 1
_INDEX_BITS = 48  # a node's id: its level above its index's 48 bits (2^48 leaves is beyond any log)


@functools.cache
def hash_function(algorithm: str) -> Hash:
    """H of the log's ``algorithm`` (``sm3`` or ``sha256``) over bytes, as one call: a copy of a
    hash object made once, a microsecond cheaper a call than naming the algorithm each time."""
    try:
        base = hashlib.new(algorithm)
    except ValueError:  # an OpenSSL without SM3 in hashlib: the same digest through cryptography
        kind = {"sm3": hashes.SM3, "sha256": hashes.SHA256}[algorithm]

        def through_cryptography(data: bytes) -> bytes:
            h = hashes.Hash(kind())
            h.update(data)
            return h.finalize()
        return through_cryptography
    copy = base.copy

    def digest(data: bytes) -> bytes:
        h = copy()
        h.update(data)
        return h.digest()
    return digest


def leaf_hash(h: Hash, entry: bytes) -> bytes:
    """``H(0x00 || entry)``."""
    return h(b"\x00" + entry)


def node_hash(h: Hash, left: bytes, right: bytes) -> bytes:
    """``H(0x01 || left || right)``."""
    return h(b"\x01" + left + right)


def node_id(node: Node) -> int:
    """The one integer a node is stored under."""
    level, index = node
    return (level << _INDEX_BITS) | index


def range_nodes(start: int, end: int) -> list[Node]:
    """The complete aligned subtrees that make up leaves ``start`` … ``end - 1``, left to right,
    each as large as its place allows."""
    nodes: list[Node] = []
    while start < end:
        level = (start & -start).bit_length() - 1 if start else (end - start).bit_length() - 1
        while start + (1 << level) > end:
            level -= 1
        nodes.append((level, start >> level))
        start += 1 << level
    return nodes


def root_nodes(size: int) -> list[Node]:
    """The nodes a tree of ``size`` leaves folds its root from (its right border)."""
    return range_nodes(0, size)


def fold(h: Hash, hashes_left_to_right: Sequence[bytes]) -> bytes:
    """The root of a range from the hashes of ``range_nodes`` over it, folded from the right: the
    hash of the range as RFC 9162 defines it, for the ranges trees and proofs ask of."""
    root = hashes_left_to_right[-1]
    for left in reversed(hashes_left_to_right[:-1]):
        root = node_hash(h, left, root)
    return root


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """The ranges whose hashes make the audit path of leaf ``index`` in a tree of ``size`` leaves
    (RFC 9162 §2.1.3.1), from the leaf upwards."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    path: list[Range] = []
    start, end = 0, size
    while end - start > 1:
        k = 1 << ((end - start - 1).bit_length() - 1)  # the largest power of two below the width
        if index < start + k:
            path.append((start + k, end))
            end = start + k
        else:
            path.append((start, start + k))
            start += k
    path.reverse()
    return path


def consistency_ranges(first: int, second: int) -> list[Range]:
    """The ranges whose hashes make the proof that the tree of ``second`` leaves extends the one of
    ``first`` (RFC 9162 §2.1.4.1), in the order of the proof."""
    if not 0 < first <= second:
        raise ValueError(f"no consistency proof from a tree of {first} to one of {second}")
    proof: list[Range] = []
    start, end, whole = 0, second, True
    m = first
    while m != end - start:
        k = 1 << ((end - start - 1).bit_length() - 1)
        if m <= k:
            proof.append((start + k, end))
            end = start + k
        else:
            proof.append((start, start + k))
            start, m, whole = start + k, m - k, False
    if not whole:
        proof.append((start, end))
    proof.reverse()
    return proof


def compact(h: Hash, stack: list[tuple[int, int, bytes]], leaves: Iterable[bytes], first: int,
            made: list[tuple[int, bytes]] | None = None) -> None:
    """Append ``leaves`` (leaf indexes from ``first``) to ``stack``, the right border of the tree
    so far as ``(level, index, hash)``: whenever two subtrees of one size meet, their parent is
    made, and added to ``made`` as ``(node id, hash)`` (the leaves are not: their entries hold them)."""
    index = first
    for leaf in leaves:
        stack.append((0, index, leaf))
        level, merged = 0, index
        # the leaf completes a subtree at each level its index ends in a one at, as far as the
        # stack holds the left halves (a stack begun at an aligned index holds no more)
        while merged & 1 and len(stack) > 1 and stack[-2][0] == level:
            right = stack.pop()[2]
            left = stack.pop()[2]
            level, merged = level + 1, merged >> 1
            parent = h(b"\x01" + left + right)
            stack.append((level, merged, parent))
            if made is not None:
                made.append(((level << _INDEX_BITS) | merged, parent))
        index += 1


Levels = list[tuple[int, list[bytes]]]  # a level's first node's index and its nodes, from the leaves up


def node_levels(h: Hash, leaves: Sequence[bytes], first: int) -> Levels:
    """Every complete aligned node ``leaves`` make (leaf indexes from ``first``), by level from the
    leaves up: the index of the level's first node, and the level's nodes. Made a level at a time
    (a list comprehension a level, several times faster than one leaf at a time)."""
    levels: Levels = []
    nodes, start = list(leaves), first
    while nodes:
        levels.append((start, nodes))
        pairs = nodes[start & 1:]  # a first node with no left half here has no parent here
        nodes = [h(b"\x01" + pairs[i] + pairs[i + 1]) for i in range(0, len(pairs) - 1, 2)]
        start = (start + 1) >> 1
    return levels


def border(levels: Levels) -> list[tuple[int, int, bytes]]:
    """The complete aligned subtrees that make up the leaves of ``levels``, left to right, as
    ``(level, index, hash)``: the range's nodes (``range_nodes``) with their hashes."""
    left: list[tuple[int, int, bytes]] = []
    right: list[tuple[int, int, bytes]] = []
    for level, (start, nodes) in enumerate(levels):
        if start & 1:  # no left half here
            left.append((level, start, nodes[0]))
        if (len(nodes) - (start & 1)) & 1:  # no right half here
            right.append((level, start + len(nodes) - 1, nodes[-1]))
    return left + right[::-1]


def subtrees(h: Hash, leaves: Sequence[bytes], first: int) -> list[tuple[int, int, bytes]]:
    """The complete aligned subtrees ``leaves`` make (leaf indexes from ``first``), as ``border`` gives them."""
    return border(node_levels(h, leaves, first))


TILE_HEIGHT = 4  # a tile: the 16 nodes at the foot of a height-4 subtree and every node above them, below its root
TILE_TIERS = 2  # tiles at levels 0-3 (of 16 leaves) and 4-7 (of 256 leaves); nodes higher up are few
_TILE_START = [sum(1 << (TILE_HEIGHT - h) for h in range(height)) for height in range(TILE_HEIGHT)]
TILE_NODES = _TILE_START[-1] + 2  # 30: every node of a tile but its root


def tile_of(tier: int, leaf: int) -> int:
    """The id of the tile of ``tier`` that holds leaf index ``leaf`` (below the tile's root)."""
    return (tier << _INDEX_BITS) | (leaf >> (TILE_HEIGHT * (tier + 1)))


def tile_nodes(tile: int) -> list[Node]:
    """The nodes a tile's row holds, in its order: its 16 foot nodes, then each level up to its
    root's two children."""
    tier, index = divmod(tile, 1 << _INDEX_BITS)
    return [(TILE_HEIGHT * tier + h, (index << (TILE_HEIGHT - h)) + i) for h in range(TILE_HEIGHT)
            for i in range(1 << (TILE_HEIGHT - h))]


def in_tile(row: bytes, tile: int, node: Node) -> bytes | None:
    """The hash of ``node`` from the row of ``tile``, or ``None`` if the tile does not hold it."""
    tier, index = divmod(tile, 1 << _INDEX_BITS)
    level, at = node
    height = level - TILE_HEIGHT * tier
    if not 0 <= height < TILE_HEIGHT or at >> (TILE_HEIGHT - height) != index:
        return None
    place = _TILE_START[height] + at - (index << (TILE_HEIGHT - height))
    return row[32 * place:32 * place + 32]


def _sibling_places(foot: int) -> tuple[int, ...]:
    """Where in a tile's row the siblings of the node at its foot ``foot`` (0 … 15) lie, in bytes,
    from the foot up."""
    return tuple(32 * (_TILE_START[height] + ((foot >> height) ^ 1)) for height in range(TILE_HEIGHT))


_SIBLINGS = [_sibling_places(foot) for foot in range(1 << TILE_HEIGHT)]  # a proof reads these, not works them out


def tiles_path(rows: Sequence[bytes], index: int) -> tuple[bytes, list[bytes]]:
    """Leaf ``index`` and its first ``TILE_HEIGHT * len(rows)`` siblings (the start of its audit
    path, from the leaf up) from the rows of its tiles, lowest tier first, each complete."""
    foot = (1 << TILE_HEIGHT) - 1
    siblings = []
    for tier, row in enumerate(rows):
        siblings += [row[at:at + 32] for at in _SIBLINGS[(index >> (TILE_HEIGHT * tier)) & foot]]
    leaf = 32 * (index & foot)
    return rows[0][leaf:leaf + 32], siblings


def stored_hashes(found: Mapping[int, bytes], nodes: Sequence[Node]) -> list[bytes]:
    """The hashes of ``nodes`` from what the store returned (``LookupError`` naming one it lacks)."""
    try:
        return [found[node_id(n)] for n in nodes]
    except KeyError as exc:
        level, index = divmod(int(exc.args[0]), 1 << _INDEX_BITS)
        raise LookupError(f"the tree lacks its node at level {level}, index {index}") from None
