"""Merkle tree primitives of RFC 9162 section 2.1 (the tree of RFC 6962 section 2.1).

Leaves are hashed as SHA-256(0x00 || data) and interior nodes as SHA-256(0x01 || left ||
right); the root of the empty tree is SHA-256(""). Everything here is a pure function of its
arguments: no I/O, no clock.

Proofs are generated from a *node oracle* ``get_subtree_root(start, end)`` that returns the
Merkle Tree Hash (MTH) of leaves ``[start, end)``. The generators only ever ask for **perfect
aligned subtrees**: ``end - start`` is a power of two and ``start`` is a multiple of it. Such a
subtree is the stored node ``(level, index)`` with ``2**level == end - start`` and
``index == start >> level``, so a store answers each call with one lookup and a proof costs
O(log n) reads. A range that is not perfect (the right edge of a tree whose size is not a power
of two) is split here into the perfect subtrees of its size's binary representation, largest
first, and folded right to left (RFC 9162 2.1.1 applied recursively).

``verify_*`` functions return ``None`` or raise :class:`ProofError`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

NodeKey = tuple[int, int]
"""``(level, index)``: the perfect subtree of leaves ``[index << level, (index + 1) << level)``."""

SubtreeRootOracle = Callable[[int, int], bytes]
"""``get_subtree_root(start, end)``: MTH of leaves ``[start, end)``, a perfect aligned range."""


class ProofError(ValueError):
    """A Merkle inclusion or consistency proof does not verify (RFC 9162 2.1.3.2, 2.1.4.2)."""


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 2.1.1: the hash of a leaf, SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 2.1.1: the hash of an interior node, SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (``n > 1``): the k of RFC 9162 2.1.1."""
    return 1 << ((n - 1).bit_length() - 1)


def is_perfect(start: int, end: int) -> bool:
    """True when ``[start, end)`` is a perfect aligned subtree (size 2**k, start % 2**k == 0)."""
    size = end - start
    return size > 0 and size & (size - 1) == 0 and start % size == 0 and start >= 0


def node_key(start: int, end: int) -> NodeKey:
    """The ``(level, index)`` key of the perfect aligned subtree ``[start, end)``."""
    if not is_perfect(start, end):
        raise ValueError(f"[{start}, {end}) is not a perfect aligned subtree")
    level = (end - start).bit_length() - 1
    return level, start >> level


def root_from_leaf_hashes(leaf_hashes: Sequence[bytes]) -> bytes:
    """Reference MTH of RFC 9162 2.1.1 over already leaf-hashed inputs (for tests, small trees)."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = _split(n)
    return node_hash(root_from_leaf_hashes(leaf_hashes[:k]), root_from_leaf_hashes(leaf_hashes[k:]))


def _fold(hashes: Sequence[bytes]) -> bytes:
    """Fold perfect-subtree roots (largest first) right to left into one MTH."""
    result = hashes[-1]
    for h in reversed(hashes[:-1]):
        result = node_hash(h, result)
    return result


def _range_root(start: int, end: int, get_subtree_root: SubtreeRootOracle) -> bytes:
    """MTH of ``[start, end)`` where ``start`` is aligned to a power of two >= ``end - start``.

    The oracle only sees the perfect pieces of the range (one per set bit of its size).
    """
    pieces: list[bytes] = []
    for size in _bit_sizes(end - start):
        assert is_perfect(start, start + size), "node oracle asked for a non-perfect range"
        pieces.append(get_subtree_root(start, start + size))
        start += size
    return _fold(pieces)


def _bit_sizes(n: int) -> list[int]:
    """The powers of two that sum to ``n``, largest first."""
    return [1 << b for b in range(n.bit_length() - 1, -1, -1) if n >> b & 1]


def tree_root(size: int, get_subtree_root: SubtreeRootOracle) -> bytes:
    """RFC 9162 2.1.1 root of the first ``size`` leaves, from at most log2(size)+1 oracle calls."""
    if size < 0:
        raise ValueError("tree size must be >= 0")
    return EMPTY_ROOT if size == 0 else _range_root(0, size, get_subtree_root)


def inclusion_proof(index: int, size: int, get_subtree_root: SubtreeRootOracle) -> list[bytes]:
    """RFC 9162 2.1.3.1 PATH(index, D[0:size]), leaf-side hash first, O(log size) oracle calls."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        mid = start + _split(end - start)
        if index < mid:
            path.append(_range_root(mid, end, get_subtree_root))
            end = mid
        else:
            path.append(_range_root(start, mid, get_subtree_root))
            start = mid
    path.reverse()
    return path


def consistency_proof(first: int, second: int, get_subtree_root: SubtreeRootOracle) -> list[bytes]:
    """RFC 9162 2.1.4.1 PROOF(first, D[0:second]) for ``0 < first <= second`` (empty if equal)."""
    if not 0 < first <= second:
        raise ValueError(f"no consistency proof from size {first} to size {second}")
    path: list[bytes] = []
    start, end, m, whole = 0, second, first, True
    while end - start != m:
        mid = start + _split(end - start)
        if m <= mid - start:
            path.append(_range_root(mid, end, get_subtree_root))
            end = mid
        else:
            path.append(_range_root(start, mid, get_subtree_root))
            m -= mid - start
            start, whole = mid, False
    if not whole:
        path.append(_range_root(start, end, get_subtree_root))
    path.reverse()
    return path


def _check_hashes(hashes: Iterable[bytes], what: str) -> None:
    for h in hashes:
        if len(h) != HASH_SIZE:
            raise ProofError(f"{what}: a hash is {len(h)} bytes, not {HASH_SIZE}")


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 2.1.3.2: check that ``leaf`` (a leaf hash) is leaf ``index`` of tree ``root``."""
    _check_hashes([leaf, root, *proof], "inclusion proof")
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not in a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is too short")
    if r != root:
        raise ProofError("inclusion proof does not lead to the root")


def verify_consistency(
    first: int, second: int, proof: Sequence[bytes], first_root: bytes, second_root: bytes
) -> None:
    """RFC 9162 2.1.4.2: check that tree ``second_root`` extends tree ``first_root``.

    ``first == second`` needs an empty proof and equal roots; ``first == 0`` is rejected, as
    RFC 9162 defines consistency proofs only for ``0 < first < second``.
    """
    _check_hashes([first_root, second_root, *proof], "consistency proof")
    if first == second and first >= 0:
        if proof:
            raise ProofError("consistency proof between equal sizes must be empty")
        if first_root != second_root:
            raise ProofError("trees of the same size have different roots")
        return
    if not 0 < first < second:
        raise ProofError(f"no consistency proof from size {first} to size {second}")
    if not proof:
        raise ProofError("consistency proof is empty")
    path = [first_root, *proof] if first & (first - 1) == 0 else list(proof)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    if fr != first_root:
        raise ProofError("consistency proof does not lead to the first root")
    if sr != second_root:
        raise ProofError("consistency proof does not lead to the second root")


class CompactRange:
    """The frontier of a tree: the roots of its perfect subtrees, one per set bit of its size.

    For a tree of size n the hashes cover ``[0, 2**a)``, ``[2**a, 2**a + 2**b)``, ... with
    a > b > ... the set bits of n (largest first). :meth:`append` is O(1) amortised (O(log n)
    worst case); :meth:`root` folds the frontier into the RFC 9162 2.1.1 root.
    """

    __slots__ = ("_size", "_hashes")

    def __init__(self) -> None:
        self._size = 0
        self._hashes: list[bytes] = []

    @property
    def size(self) -> int:
        """Number of leaves appended."""
        return self._size

    def append(self, leaf: bytes) -> None:
        """Add the next leaf hash, merging equal-sized subtrees (one per trailing 1 bit)."""
        _check_length(leaf)
        self._hashes.append(leaf)
        n = self._size
        while n & 1:
            right = self._hashes.pop()
            self._hashes[-1] = node_hash(self._hashes[-1], right)
            n >>= 1
        self._size += 1

    def root(self) -> bytes:
        """RFC 9162 2.1.1 root of the tree so far (``EMPTY_ROOT`` when empty)."""
        return _fold(self._hashes) if self._hashes else EMPTY_ROOT

    def to_hashes(self) -> list[bytes]:
        """The frontier hashes, largest subtree first (persist them with :attr:`size`)."""
        return list(self._hashes)

    def to_bytes(self) -> bytes:
        """The frontier hashes concatenated (32 bytes each, largest subtree first)."""
        return b"".join(self._hashes)

    @classmethod
    def from_hashes(cls, size: int, hashes: Sequence[bytes]) -> CompactRange:
        """Rebuild from :meth:`to_hashes`; ``len(hashes)`` must be the popcount of ``size``."""
        if size < 0 or len(hashes) != size.bit_count():
            raise ValueError(f"size {size} needs {max(size, 0).bit_count()} frontier hashes")
        for h in hashes:
            _check_length(h)
        cr = cls()
        cr._size, cr._hashes = size, list(hashes)
        return cr

    @classmethod
    def from_bytes(cls, size: int, data: bytes) -> CompactRange:
        """Rebuild from :meth:`to_bytes`."""
        if len(data) % HASH_SIZE:
            raise ValueError("frontier bytes are not a whole number of hashes")
        hashes = [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]
        return cls.from_hashes(size, hashes)


def _check_length(h: bytes) -> None:
    if len(h) != HASH_SIZE:
        raise ValueError(f"a hash is {len(h)} bytes, not {HASH_SIZE}")


def subtree_hashes_completed_by_append(
    index: int, leaf: bytes, get_stored: Callable[[NodeKey], bytes]
) -> list[tuple[NodeKey, bytes]]:
    """The ``((level, idx), hash)`` rows a node store writes when leaf ``index`` is appended.

    Appending leaf i completes the leaf node ``(0, i)`` and, for every level k >= 1 where
    ``(i + 1) % 2**k == 0``, the node ``(k, (i + 1) // 2**k - 1)`` = node_hash(left, right)
    whose left child ``(k - 1, 2 * idx)`` was written earlier and is read with
    ``get_stored((level, idx))`` (one read per completed level) and whose right child was
    just computed. Rows come bottom-up. A SQL store with ``merkle_nodes(level, idx, hash)``
    inserts exactly these rows; it then answers ``get_subtree_root(start, end)`` with the row
    ``node_key(start, end)``.
    """
    _check_length(leaf)
    if index < 0:
        raise ValueError("leaf index must be >= 0")
    rows: list[tuple[NodeKey, bytes]] = [((0, index), leaf)]
    level, idx, h = 0, index, leaf
    while idx & 1:
        h = node_hash(get_stored((level, idx - 1)), h)
        level, idx = level + 1, idx >> 1
        rows.append(((level, idx), h))
    return rows


class MemoryNodeStore:
    """An in-memory node store (tests, bundle building): leaf hashes plus completed subtrees."""

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._nodes: dict[NodeKey, bytes] = {}
        self._size = 0
        for h in leaf_hashes:
            self.append(h)

    @property
    def size(self) -> int:
        """Number of leaves."""
        return self._size

    def append(self, leaf: bytes) -> int:
        """Append a leaf hash; return its index."""
        index = self._size
        self._nodes.update(subtree_hashes_completed_by_append(index, leaf, self._nodes.__getitem__))
        self._size += 1
        return index

    def leaf_hash(self, index: int) -> bytes:
        """The leaf hash at ``index``."""
        return self._nodes[(0, index)]

    def get_subtree_root(self, start: int, end: int) -> bytes:
        """Node oracle: the stored MTH of the perfect aligned subtree ``[start, end)``."""
        if end > self._size:
            raise ValueError(f"[{start}, {end}) is beyond the tree size {self._size}")
        return self._nodes[node_key(start, end)]

    def root(self, size: int | None = None) -> bytes:
        """Root of the first ``size`` leaves (default: all)."""
        return tree_root(self._size if size is None else size, self.get_subtree_root)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 inclusion proof for leaf ``index`` in the tree of ``size`` (default: all)."""
        return inclusion_proof(index, self._size if size is None else size, self.get_subtree_root)

    def consistency_proof(self, first: int, second: int | None = None) -> list[bytes]:
        """RFC 9162 consistency proof from ``first`` to ``second`` (default: all)."""
        return consistency_proof(
            first, self._size if second is None else second, self.get_subtree_root
        )
