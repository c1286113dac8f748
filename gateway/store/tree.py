"""The exchange log's Merkle tree as the store keeps it: the hash of every complete subtree, grown
inside the transaction that appends the entries (one update a transaction: the parents the new
leaves complete, and the tiles), so that roots and proofs are read, never recomputed (but for the
few nodes below the last, incomplete tile); the checkpoints signed over it and the cosignatures
witnesses returned."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from gateway.exceptions import LogIntegrityError, ParameterError
from gateway.exchange_log import LOG_COLUMNS, changed_entry, row_entry
from gateway.merkle import (
    TILE_HEIGHT,
    TILE_TIERS,
    Levels,
    Range,
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
    stored_hashes,
    tile_nodes,
    tile_of,
    tiles_path,
)
from gateway.store.base import Connection, Database

__all__ = ["LogTree", "SignedCheckpoint", "stored_tree_differs"]

_CATCH_UP = 20_000  # entries of a log written before the tree added to it a transaction
_LEAVES = 1 << 48  # node ids below this are leaves (level 0)
_HASH_SIZE = 32  # bytes of a hash, SM3's as SHA-256's
_IN_TILES = TILE_HEIGHT << 48  # nodes below level 4 are kept in their tile's row only, once it is complete
_TILE_ROOTS = {TILE_HEIGHT * (tier + 1) for tier in range(TILE_TIERS)}  # the levels of tiles' roots: 4, 8
# the tiles above a leaf, lowest tier first (a tier is the high bits of a tile's id)
_TILES_SQL = {n: f"SELECT tile, hashes FROM log_tiles WHERE tile IN ({', '.join('?' * n)}) ORDER BY tile"
              for n in range(1, TILE_TIERS + 1)}
_ABOVE_TILES = TILE_HEIGHT * TILE_TIERS + 1  # nodes from level 9 up: held to their children when verified
_UPPER = 8 << 48  # nodes from level 8 up (subtrees of 256 entries and more) are kept in memory once read…
_UPPER_KEPT = 500_000  # …up to this many (a log of some 100 million entries)
_PATHS_KEPT = 100_000  # audit paths above nodes from level 8 up kept (two for each tile of a log of 12 million)


def _from_tiles(rows: dict[int, bytes], leaves: Range) -> bytes | None:
    """The hash of a range of leaves from the tiles' rows, where it is one node they hold."""
    nodes = range_nodes(*leaves)
    if len(nodes) == 1:
        for tile, row in rows.items():
            if (found := in_tile(row, tile, nodes[0])) is not None:
                return found
    return None


def _held(value: object) -> bytes | None:
    return bytes(value) if isinstance(value, bytes | bytearray | memoryview) else None


def _altered(level: int, index: int, what: str) -> tuple[int, str]:
    first = index << level
    return first + 1, (f"the tree's {what} over entries {first + 1}-{first + (1 << level)} differs from what they "
                       "make, or is missing: proofs of them would not hold (the tree was altered)")


def _tile_rows(levels: Levels, foot: int, first: int, end: int) -> list[bytes]:
    """The rows of the tiles ``first`` … ``end - 1`` whose foot is at level ``foot``, as ``levels``
    make them: each its 16 foot nodes, then each level up to its root's two children."""
    heights = range(TILE_HEIGHT)
    joined = [b"".join(levels[foot + height][1]) for height in heights]  # a level's nodes, sliced below
    starts = [levels[foot + height][0] for height in heights]
    return [b"".join([joined[height][((index << (TILE_HEIGHT - height)) - starts[height]) * _HASH_SIZE:
                                     (((index + 1) << (TILE_HEIGHT - height)) - starts[height]) * _HASH_SIZE]
                      for height in heights]) for index in range(first, end)]


def stored_tree_differs(db: Connection, levels: Levels) -> tuple[int, str] | None:
    """Where the tree proofs are read from — its nodes and its tiles' rows — holds, over the
    leaves of ``levels`` (``node_levels``), another hash than they make, or lacks one that every
    tree holds (nodes from level 4 up, complete tiles): the first entry below it and why; ``None``
    where it holds. Leaves are held only for entries written before the tree: checked where held.
    Each level and tier is compared whole (one query, one comparison); only one that differs is
    searched for the place."""
    for level, (start, nodes) in enumerate(levels):
        low = node_id((level, start))
        span = (low, low + len(nodes) - 1)
        rows = db.execute("SELECT hash FROM log_tree WHERE node BETWEEN ? AND ? ORDER BY node", span).fetchall()
        required = level >= TILE_HEIGHT
        if (not rows and not required) or [r[0] for r in rows] == nodes:
            continue
        found = {int(node) - low: _held(value) for node, value in db.execute(
            "SELECT node, hash FROM log_tree WHERE node BETWEEN ? AND ?", span)}
        bad = next((i for i in range(len(nodes)) if found.get(i, None if required else nodes[i]) != nodes[i]), None)
        if bad is not None:  # (else the leaves of some entries only: those written before the tree)
            return _altered(level, start + bad, "node")
    for tier in range(TILE_TIERS):
        foot = TILE_HEIGHT * tier
        if foot + TILE_HEIGHT > len(levels):
            break
        start, feet = levels[foot]
        first, end = -(-start // 16), (start + len(feet)) // 16  # the tiles whose 16 feet are all here
        if first >= end:
            continue
        made = _tile_rows(levels, foot, first, end)
        span = (tile_of(tier, first << foot << TILE_HEIGHT), tile_of(tier, (end - 1) << foot << TILE_HEIGHT))
        rows = db.execute("SELECT hashes FROM log_tiles WHERE tile BETWEEN ? AND ? ORDER BY tile", span).fetchall()
        if [r[0] for r in rows] == made:
            continue
        held = {int(tile) & (_LEAVES - 1): _held(value) for tile, value in db.execute(
            "SELECT tile, hashes FROM log_tiles WHERE tile BETWEEN ? AND ?", span)}
        bad = next(i for i in range(first, end) if held.get(i) != made[i - first])
        return _altered(foot + TILE_HEIGHT, bad, "tile")
    return None


class SignedCheckpoint(NamedTuple):
    """A checkpoint as signed and kept: the tree size, when, the verifier key of the key that
    signed it, the note."""

    size: int
    at: str
    signer: str
    note: str


class LogTree:
    """The tree over the exchange log, its checkpoints and their cosignatures."""

    def __init__(self, store: Database) -> None:
        self.store = store
        self.hash = hash_function(store.log_hash)
        # a complete subtree's hash never changes: those high in the tree, shared by most proofs,
        # are kept here once read (a few thousand for a log of a million entries)
        self._upper: dict[int, bytes] = {}
        # the audit path above a node from level 8 up, by node and tree size: the same for its leaves
        self._paths: dict[tuple[int, int, int], tuple[bytes, ...]] = {}
        self._known = 0  # a tree size known to be held (read again only for a larger one)
        # the right border of the tree this gateway last grew: the size, the log's head hash then
        self._border: tuple[int, str, list[tuple[int, int, bytes]]] = (0, "", [])

    # ---- growing, inside the appending transaction ----------------------------------------------

    def grow(self, db: Connection, size: int, leaves: Sequence[bytes], *, keep_leaves: bool = False,
             heads: tuple[str, str] | None = None) -> None:
        """Add ``leaves`` to the tree of ``size`` leaves (the log's head before them): the parents
        they complete are kept; the leaves themselves only with ``keep_leaves`` (entries written
        before the tree, whose hash is their chain's), since every later entry's hash is its leaf.
        With ``heads``, the hashes of the log's last entry before and after them, the tree's right
        border is kept in memory for the next append that starts from that same head."""
        held = db.execute("SELECT seq FROM progress WHERE name = 'tree'").fetchone()
        if held is None or held[0] != size:
            raise LogIntegrityError(f"交换日志的树与日志不一致 / the log's tree holds {held and held[0]} entries, the "
                                    f"log {size}: run `supex log verify`")
        # the border this gateway left, if the log has the head it left (another gateway may have
        # appended since, or that transaction may have been rolled back): else read from the tree
        if heads is not None and self._border[:2] == (size, heads[0]):
            stack = list(self._border[2])
        else:
            stack = [(*node, hash_) for node, hash_ in zip(root_nodes(size), self._hashes(db, root_nodes(size)),
                                                             strict=True)]
        made: list[tuple[int, bytes]] = []
        compact(self.hash, stack, leaves, size, made)
        self._border = (size + len(leaves), heads[1], stack) if heads is not None else (0, "", [])
        kept = [(node, value) for node, value in made if node >= _IN_TILES]  # lower ones: in their tiles' rows
        db.executemany("INSERT INTO log_tree (node, hash) VALUES (?, ?)", [*enumerate(leaves, size), *kept]
                       if keep_leaves else kept)
        db.execute("UPDATE progress SET seq = ? WHERE name = 'tree'", (size + len(leaves),))
        # a tile is kept once complete: when its root is made
        completed = [((level // TILE_HEIGHT - 1) << 48) | (node & (_LEAVES - 1)) for node, _ in made
                     if (level := node >> 48) in _TILE_ROOTS]
        if completed:
            self._tile(db, completed, {**dict(enumerate(leaves, size)), **dict(made)})

    def _tile(self, db: Connection, tiles: Sequence[int], have: dict[int, bytes]) -> None:
        """Keep each of ``tiles``, just completed, as one row of its nodes (those made before this
        transaction read back from the table and the entries)."""
        rows = [(tile, b"".join(self._hashes(db, tile_nodes(tile), have))) for tile in tiles]
        db.executemany("INSERT INTO log_tiles (tile, hashes) VALUES (?, ?)", rows)

    def catch_up(self) -> int:
        """Build the tree over entries appended before it existed (a store migrated to it): their
        leaves are the hash of the same canonical JSON their chain hashed. How many were added."""
        added = 0
        while True:
            with self.store.transaction() as db:
                size = db.execute("SELECT seq FROM progress WHERE name = 'tree'").fetchone()[0]
                rows = db.execute(f"SELECT {', '.join(LOG_COLUMNS)} FROM exchange_log WHERE seq > ? ORDER BY seq "
                                  "LIMIT ?", (size, _CATCH_UP)).fetchall()
                if not rows:
                    return added
                self.grow(db, size, [leaf_hash(self.hash, row_entry(r).canonical(r[0])) for r in rows],
                          keep_leaves=True)
                added += len(rows)

    # ---- reading ------------------------------------------------------------------------------

    def size(self) -> int:
        """How many entries the tree holds."""
        with self.store.query() as db:
            return int(db.execute("SELECT seq FROM progress WHERE name = 'tree'").fetchone()[0])

    def sizes(self) -> tuple[int, int]:
        """How many entries the tree holds and the seq of the log's last entry, read together (one
        statement: an append in between cannot make them differ)."""
        with self.store.query() as db:
            row = db.execute("SELECT (SELECT seq FROM progress WHERE name = 'tree'), "
                             "(SELECT coalesce(max(seq), 0) FROM exchange_log)").fetchone()
            return int(row[0]), int(row[1])

    def root(self, size: int) -> bytes:
        """The root hash of the tree of the first ``size`` entries."""
        with self.store.query() as db:
            self._within(db, size)
            return self._ranges(db, [(0, size)])[0]

    def hashes(self, ranges: Sequence[Range]) -> list[bytes]:
        """The hash of each range of leaves (each within the tree)."""
        with self.store.query() as db:
            return self._ranges(db, ranges)

    def border(self, size: int) -> list[tuple[int, int, bytes]]:
        """The complete subtrees that make up the first ``size`` entries, left to right, as
        ``(level, index, hash)``: what stands for entries archived before a bundle or pruned."""
        nodes = range_nodes(0, size)
        with self.store.query() as db:
            return [(*node, value) for node, value in zip(nodes, self._hashes(db, nodes), strict=True)]

    def upper_differs(self, size: int, from_level: int = _ABOVE_TILES) -> tuple[int, str] | None:
        """Where, in the tree of ``size`` entries, a node from ``from_level`` up is missing or is not
        the parent of its two children as stored: the first entry below it and why; ``None`` where
        all hold. With the nodes below held to the entries by ``stored_tree_differs``, stretch by
        stretch, this holds those above any stretch (a few thousand in a log of millions), whatever
        a stretch's size, and those over entries pruned."""
        with self.store.query() as db:
            rows = {int(node): _held(value) for node, value in db.execute(
                "SELECT node, hash FROM log_tree WHERE node >= ?", (node_id((from_level - 1, 0)),))}
        for level in range(from_level, size.bit_length()):
            for index in range(size >> level):
                parent = rows.get(node_id((level, index)))
                left, right = rows.get(node_id((level - 1, 2 * index))), rows.get(node_id((level - 1, 2 * index + 1)))
                if parent is None or left is None or right is None or self.hash(b"\x01" + left + right) != parent:
                    return _altered(level, index, "node")
        return None

    def inclusion(self, seq: int, size: int) -> tuple[bytes, list[bytes]]:
        """The leaf hash of entry ``seq`` and its audit path in the tree of ``size`` entries."""
        with self.store.query() as db:
            self._within(db, size)
            if not 1 <= seq <= size:
                raise ParameterError(f"seq 应在 1 到 {size} 之间 / seq must be between 1 and tree_size {size}")
            index = seq - 1
            # the complete tiles above the leaf, a row each; what they do not hold is high in the
            # tree (the same few nodes for every leaf of a tile, kept in memory once made), or in
            # the last tiles, not complete yet
            tiles = [tile_of(tier, index) for tier in range(TILE_TIERS)
                     if ((index >> (TILE_HEIGHT * (tier + 1))) + 1) << (TILE_HEIGHT * (tier + 1)) <= size]
            found = db.execute(_TILES_SQL[len(tiles)], tiles).fetchall() if tiles else []
            if len(found) != len(tiles):
                raise LogIntegrityError(f"交换日志的树缺少分片 / the tree lacks a tile above entry {seq}: run "
                                        "`supex log verify`")
            if len(found) == TILE_TIERS:  # the common case: every tile complete, the path's start read off them
                leaf, low = tiles_path([bytes(r[1]) for r in found], index)
                self._read_upper(db)
                return leaf, [*low, *self._above(db, TILE_HEIGHT * TILE_TIERS, index >> len(low), size)]
            wanted = [(index, seq), *inclusion_ranges(index, size)]  # the leaf, then its audit path
            rows = {int(r[0]): bytes(r[1]) for r in found}
            hashes = [_from_tiles(rows, r) for r in wanted]
            made = iter(self._ranges(db, [r for r, h in zip(wanted, hashes, strict=True) if h is None]))
            done = [h if h is not None else next(made) for h in hashes]
            return done[0], done[1:]

    def _above(self, db: Connection, level: int, index: int, size: int) -> tuple[bytes, ...]:
        """The audit path above node ``(level, index)`` in the tree of ``size`` leaves: at each level,
        the hash of its sibling's leaves (fewer at the tree's right edge, none past it). Kept by node
        and size, it is made once for the two halves of every parent, not once for every tile."""
        key = (level, index, size)
        if (path := self._paths.get(key)) is not None:
            return path
        if index == 0 and 1 << level >= size:  # this node's leaves are the whole tree
            return ()
        above = self._above(db, level + 1, index >> 1, size)
        start = (index ^ 1) << level
        path = (*self._ranges(db, [(start, min(start + (1 << level), size))]), *above) if start < size else above
        if len(self._paths) > _PATHS_KEPT:
            self._paths.clear()
        self._paths[key] = path
        return path

    def _read_upper(self, db: Connection) -> None:
        """Read the nodes from level 8 up once, in one query (some 8,000 for a log of a million
        entries, highest first up to the cap), rather than a query for each tile's path above it."""
        if not self._upper:
            self._upper.update((int(node), bytes(value)) for node, value in db.execute(
                "SELECT node, hash FROM log_tree WHERE node >= ? ORDER BY node DESC LIMIT ?", (_UPPER, _UPPER_KEPT)))

    def consistency(self, first: int, second: int) -> list[bytes]:
        """The proof that the tree of ``second`` entries extends the one of ``first``."""
        with self.store.query() as db:
            self._within(db, second)
            if not 1 <= first <= second:
                raise ParameterError(f"first 应在 1 到 {second} 之间 / first must be between 1 and second ({second})")
            return self._ranges(db, consistency_ranges(first, second)) if first < second else []

    def _within(self, db: Connection, size: int) -> None:
        if 1 <= size <= self._known:
            return
        held = self._known = int(db.execute("SELECT seq FROM progress WHERE name = 'tree'").fetchone()[0])
        if not held:
            raise ParameterError(f"日志为空 / the log is empty: there is no tree of {size} entries to prove")
        if not 1 <= size <= held:
            raise ParameterError(f"树的大小应在 1 到 {held} 之间 / a tree size must be between 1 and {held}, the log's "
                                 f"size now (not {size})")

    def _ranges(self, db: Connection, ranges: Sequence[Range]) -> list[bytes]:
        """The hash of each range, from the stored nodes it is made of (one query for all)."""
        parts = [range_nodes(a, b) for a, b in ranges]
        hashes = iter(self._hashes(db, [n for nodes in parts for n in nodes]))
        return [fold(self.hash, [next(hashes) for _ in nodes]) for nodes in parts]

    def _hashes(self, db: Connection, nodes: Sequence[tuple[int, int]],
                have: dict[int, bytes] | None = None) -> list[bytes]:
        """The stored hashes of ``nodes`` (those in ``have`` taken from there);
        ``LogIntegrityError`` if the tree lacks one."""
        found = have or {}
        missing = [n for n in nodes if node_id(n) not in found]
        if missing:
            found = {**found, **self._found(db, missing)}
        try:
            return stored_hashes(found, nodes)
        except LookupError as exc:
            raise LogIntegrityError(f"交换日志的树缺少节点 / {exc}: run `supex log verify`") from None

    def _found(self, db: Connection, nodes: Sequence[tuple[int, int]]) -> dict[int, bytes]:
        """The stored hashes of ``nodes``: from level 4 up (and the leaves of entries written before
        the tree) from the tree's table; the leaves from their entries' hashes; the leaves and the
        levels 1-3 from their tile's row once it is complete (the only place that keeps the leaves
        of entries archived and pruned), and in the last tile, not complete yet, made from the leaves
        under them."""
        upper = self._upper
        found: dict[int, bytes] = {}
        wanted = []
        for i in {node_id(n) for n in nodes}:
            if i in upper:
                found[i] = upper[i]
            else:
                wanted.append(i)
        if not wanted:
            return found
        for node, value in db.execute(f"SELECT node, hash FROM log_tree WHERE node IN "
                                      f"({', '.join('?' * len(wanted))})", wanted):
            found[node] = bytes(value)
            if node >= _UPPER and len(upper) < _UPPER_KEPT:
                upper[node] = found[node]
        # a leaf's id is its index, its entry's hash the leaf
        if leaves := [i + 1 for i in wanted if i < _LEAVES and i not in found]:
            found.update({seq - 1: _leaf(seq, value) for seq, value in db.execute(
                f"SELECT seq, hash FROM exchange_log WHERE seq IN ({', '.join('?' * len(leaves))})", leaves)})
        if low := [i for i in wanted if i < _IN_TILES and i not in found]:
            self._in_tiles(db, low, found)
        return found

    def _in_tiles(self, db: Connection, low: Sequence[int], found: dict[int, bytes]) -> None:
        """Add to ``found`` the hashes of the nodes ``low`` (ids below level 4) from their tiles' rows,
        or made from the leaves under them where their tile is not complete yet."""
        tiles = sorted({tile_of(0, (i & (_LEAVES - 1)) << (i >> 48)) for i in low})
        rows = {int(tile): bytes(row) for tile, row in db.execute(
            f"SELECT tile, hashes FROM log_tiles WHERE tile IN ({', '.join('?' * len(tiles))})", tiles)}
        for i in low:
            level, index = i >> 48, i & (_LEAVES - 1)
            tile = tile_of(0, index << level)
            if tile in rows and (value := in_tile(rows[tile], tile, (level, index))) is not None:
                found[i] = value
        if parents := [(i >> 48, i & (_LEAVES - 1)) for i in low if i >= _LEAVES and i not in found]:
            below = self._found(db, [(level - 1, 2 * index + side) for level, index in parents for side in (0, 1)])
            for level, index in parents:
                left, right = node_id((level - 1, 2 * index)), node_id((level - 1, 2 * index + 1))
                if left in below and right in below:
                    found[node_id((level, index))] = self.hash(b"\x01" + below[left] + below[right])

    # ---- checkpoints and cosignatures ---------------------------------------------------------

    def keep_checkpoint(self, checkpoint: SignedCheckpoint, *, retired: Sequence[str] = ()) -> bool:
        """Keep a signed checkpoint, if the log is signed by its key — the signer of the latest one
        kept, or one ``retired`` in its favour (a rotation), or any for the first — and no
        checkpoint of its size is kept yet; whether it was. Checked and kept in one serialised
        write, so that gateways on one database never sign the log with two keys."""
        with self.store.transaction() as db:
            latest = db.execute("SELECT signer FROM checkpoints ORDER BY size DESC LIMIT 1").fetchone()
            if latest is not None and latest[0] != checkpoint.signer and latest[0] not in retired:
                return False
            rows = db.execute("INSERT INTO checkpoints (size, at, signer, note) VALUES (?, ?, ?, ?) "
                              "ON CONFLICT (size) DO NOTHING RETURNING size", checkpoint).fetchall()
        return bool(rows)

    def checkpoint(self, size: int | None = None) -> SignedCheckpoint | None:
        """The checkpoint signed at ``size``, or the latest one."""
        with self.store.query() as db:
            if size is None:
                row = db.execute("SELECT size, at, signer, note FROM checkpoints ORDER BY size DESC LIMIT 1").fetchone()
            else:
                row = db.execute("SELECT size, at, signer, note FROM checkpoints WHERE size = ?", (size,)).fetchone()
        return None if row is None else SignedCheckpoint(*row)

    def keep_cosignature(self, size: int, witness: str, line: str, at: str) -> None:
        """Keep a witness's cosignature line of the checkpoint of ``size`` (its latest, per witness)."""
        with self.store.transaction(serial=False) as db:
            db.execute("INSERT INTO cosignatures (size, witness, at, line) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT (size, witness) DO UPDATE SET at = excluded.at, line = excluded.line",
                       (size, witness, at, line))

    def cosignatures(self, size: int) -> list[str]:
        """The cosignature lines witnesses returned for the checkpoint of ``size``."""
        with self.store.query() as db:
            return [str(r[0]) for r in db.execute(
                "SELECT line FROM cosignatures WHERE size = ? ORDER BY witness", (size,))]


def _leaf(seq: int, value: object) -> bytes:
    """Entry ``seq``'s hash, its leaf in the tree; ``LogIntegrityError`` naming the entry if what its
    row holds is no hash (changed in the store)."""
    try:
        leaf = bytes.fromhex(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise changed_entry(seq) from None
    if len(leaf) != _HASH_SIZE:
        raise changed_entry(seq)
    return leaf
