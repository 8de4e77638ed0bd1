"""RFC 9162 / RFC 6962 Merkle tree: published vectors, properties and node stores."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import merkle
from ledger.merkle import (
    EMPTY_ROOT,
    CompactRange,
    MemoryNodeStore,
    NodeKey,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
    subtree_hashes_completed_by_append,
    verify_consistency,
    verify_inclusion,
)

# The eight leaf inputs and roots of the certificate-transparency reference tests
# (C++ merkletree/merkle_tree_test.cc, Go merkle/log_verifier_test.go), as carried in
# transparency-dev/merkle proof/verify_test.go (`leaves`, `roots`).
LEAF_INPUTS = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
LEAVES = [leaf_hash(d) for d in LEAF_INPUTS]
ROOTS = {
    size: bytes.fromhex(h)
    for size, h in {
        1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    }.items()
}


def _hashes(*hexes: str) -> list[bytes]:
    return [bytes.fromhex(h) for h in hexes]


# Published proofs, transparency-dev/merkle proof/verify_test.go `inclusionProofs` and
# `consistencyProofs` (same values as certificate-transparency-go merkle/log_verifier_test.go).
# The Go table numbers leaves from 1; the index here is leaf - 1.
INCLUSION_VECTORS = [
    (
        0,
        8,
        _hashes(
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ),
    ),
    (
        5,
        8,
        _hashes(
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
    (2, 3, _hashes("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")),
    (
        1,
        5,
        _hashes(
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ),
    ),
    (0, 1, []),
]
CONSISTENCY_VECTORS = [
    (1, 1, []),
    (
        1,
        8,
        _hashes(
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ),
    ),
    (
        6,
        8,
        _hashes(
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
    (
        2,
        5,
        _hashes(
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ),
    ),
    (
        6,
        7,
        _hashes(
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
]
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


# --- reference algorithms, transcribed from RFC 9162 2.1.3.1 and 2.1.4.1 over a leaf list ---


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = merkle._split(len(d))
    if m < k:
        return ref_path(m, d[:k]) + [root_from_leaf_hashes(d[k:])]
    return ref_path(m - k, d[k:]) + [root_from_leaf_hashes(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [root_from_leaf_hashes(d)]
    k = merkle._split(n)
    if m <= k:
        return ref_subproof(m, d[:k], b) + [root_from_leaf_hashes(d[k:])]
    return ref_subproof(m - k, d[k:], False) + [root_from_leaf_hashes(d[:k])]


def leaves_for(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


class RecordingOracle:
    """A node oracle over a leaf list that checks and counts what it is asked."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.leaves, self.calls = leaves, 0

    def __call__(self, start: int, end: int) -> bytes:
        assert merkle.is_perfect(start, end), (start, end)
        self.calls += 1
        return root_from_leaf_hashes(self.leaves[start:end])


# --- hashing and the published vectors --------------------------------------------------------


def test_hashes_use_the_rfc_6962_domain_separation_prefixes() -> None:
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert node_hash(b"l", b"r") == hashlib.sha256(b"\x01lr").digest()
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert root_from_leaf_hashes([]) == EMPTY_ROOT


@pytest.mark.parametrize("size", sorted(ROOTS))
def test_published_roots(size: int) -> None:
    assert root_from_leaf_hashes(LEAVES[:size]) == ROOTS[size]
    cr = CompactRange()
    for h in LEAVES[:size]:
        cr.append(h)
    assert cr.root() == ROOTS[size]
    assert MemoryNodeStore(LEAVES).root(size) == ROOTS[size]


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_VECTORS)
def test_published_inclusion_proofs(index: int, size: int, proof: list[bytes]) -> None:
    store = MemoryNodeStore(LEAVES)
    assert store.inclusion_proof(index, size) == proof
    assert ref_path(index, LEAVES[:size]) == proof  # the vector recomputes
    verify_inclusion(index, size, LEAVES[index], proof, ROOTS[size])


@pytest.mark.parametrize(("first", "second", "proof"), CONSISTENCY_VECTORS)
def test_published_consistency_proofs(first: int, second: int, proof: list[bytes]) -> None:
    store = MemoryNodeStore(LEAVES)
    assert store.consistency_proof(first, second) == proof
    if first < second:
        assert ref_subproof(first, LEAVES[:second], True) == proof
    verify_consistency(first, second, proof, ROOTS[first], ROOTS[second])


def _inclusion_probes(
    i: int, n: int, leaf: bytes, proof: list[bytes], root: bytes
) -> list[tuple[int, int, bytes, list[bytes], bytes]]:
    """The corruptions of transparency-dev's corruptInclusionProof (same-length hashes only)."""
    probes = [
        (i - 1, n, leaf, proof, root),
        (i + 1, n, leaf, proof, root),
        (i ^ 2, n, leaf, proof, root),
        (i, n * 2, leaf, proof, root),
        (i, n // 2, leaf, proof, root),
        (i, n, SOME_HASH, proof, root),
        (i, n, leaf, proof, EMPTY_ROOT),
        (i, n, leaf, proof, SOME_HASH),
        (i, n, leaf, [*proof, root], root),
        (i, n, leaf, [root, *proof], root),
    ]
    for k in range(len(proof)):
        bad = list(proof)
        bad[k] = bytes([bad[k][0] ^ 8]) + bad[k][1:]
        probes.append((i, n, leaf, bad, root))
    if proof:
        probes.append((i, n, leaf, proof[:-1], root))
    if len(proof) > 1:
        probes.append((i, n, leaf, [SOME_HASH, proof[0], *proof[1:]], root))
    return probes


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_VECTORS[:4])
def test_corrupted_published_inclusion_proofs_fail(
    index: int, size: int, proof: list[bytes]
) -> None:
    for probe in _inclusion_probes(index, size, LEAVES[index], proof, ROOTS[size]):
        with pytest.raises(ProofError):
            verify_inclusion(*probe)


@pytest.mark.parametrize(("first", "second", "proof"), CONSISTENCY_VECTORS[1:])
def test_corrupted_published_consistency_proofs_fail(
    first: int, second: int, proof: list[bytes]
) -> None:
    r1, r2 = ROOTS[first], ROOTS[second]
    probes = [
        (first - 1, second, proof, r1, r2),
        (first + 1, second, proof, r1, r2),
        (first ^ 2, second, proof, r1, r2),
        (first, second * 2, proof, r1, r2),
        (first, second // 2, proof, r1, r2),
        (first, second, proof, SOME_HASH, r2),
        (first, second, proof, r1, SOME_HASH),
        (first, second, proof, r2, r1),
        (first, second, [], r1, r2),
        (first, second, [*proof, r1], r1, r2),
        (first, second, [*proof, r2], r1, r2),
        (first, second, [r1, *proof], r1, r2),
        (first, second, [r2, *proof], r1, r2),
        (first, second, [proof[0], *proof], r1, r2),
        (first, second, proof[:-1], r1, r2),
    ]
    for k in range(len(proof)):
        bad = list(proof)
        bad[k] = bytes([bad[k][0] ^ 16]) + bad[k][1:]
        probes.append((first, second, bad, r1, r2))
    for probe in probes:
        if probe[0] == probe[1] and probe[3] == probe[4] and not probe[2]:
            continue  # equal trees with an empty proof are consistent
        with pytest.raises(ProofError):
            verify_consistency(*probe)


@pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 0), (2, 1), (-1, 4)])
def test_inclusion_outside_the_tree_fails(index: int, size: int) -> None:
    with pytest.raises(ProofError, match="not in a tree"):
        verify_inclusion(index, size, SOME_HASH, [], SOME_HASH)


@pytest.mark.parametrize(("index", "size"), [(0, 1), (0, 2), (5, 8), (6, 7)])
def test_inclusion_proof_longer_than_the_path_fails_as_too_long(index: int, size: int) -> None:
    """RFC 9162 2.1.3.2: when sn reaches 0 with proof hashes left, verification stops and
    fails (a proof one hash long for the tree of one leaf, a correct path with one more)."""
    proof = MemoryNodeStore(LEAVES[:size]).inclusion_proof(index)
    verify_inclusion(index, size, LEAVES[index], proof, ROOTS[size])
    with pytest.raises(ProofError, match="too long"):
        verify_inclusion(index, size, LEAVES[index], [*proof, SOME_HASH], ROOTS[size])
    if proof:
        with pytest.raises(ProofError, match="too short"):
            verify_inclusion(index, size, LEAVES[index], proof[:-1], ROOTS[size])


def test_hashes_of_the_wrong_length_fail() -> None:
    with pytest.raises(ProofError, match="bytes, not 32"):
        verify_inclusion(0, 1, b"", [], b"")
    with pytest.raises(ProofError, match="bytes, not 32"):
        verify_consistency(1, 2, [b"short"], ROOTS[1], ROOTS[2])


def test_consistency_edge_sizes() -> None:
    verify_consistency(3, 3, [], ROOTS[3], ROOTS[3])
    with pytest.raises(ProofError, match="different roots"):
        verify_consistency(3, 3, [], ROOTS[3], ROOTS[4])
    with pytest.raises(ProofError, match="must be empty"):
        verify_consistency(3, 3, [SOME_HASH], ROOTS[3], ROOTS[3])
    with pytest.raises(ProofError, match="no consistency proof"):
        verify_consistency(0, 3, [], EMPTY_ROOT, ROOTS[3])  # RFC 9162: only 0 < first
    with pytest.raises(ProofError, match="no consistency proof"):
        verify_consistency(4, 3, [SOME_HASH], ROOTS[4], ROOTS[3])
    with pytest.raises(ValueError, match="no consistency proof"):
        consistency_proof(0, 3, RecordingOracle(LEAVES))
    with pytest.raises(ValueError, match="not in a tree"):
        inclusion_proof(3, 3, RecordingOracle(LEAVES))


# --- properties over random trees -------------------------------------------------------------


def _flip(proof: list[bytes], k: int) -> list[bytes]:
    bad = list(proof)
    bad[k] = bytes([bad[k][0] ^ 1]) + bad[k][1:]
    return bad


@settings(max_examples=120, deadline=None)
@given(
    st.integers(1, 300).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1))),
    st.integers(0, 10_000),
)
def test_every_generated_inclusion_proof_verifies_and_every_alteration_fails(
    size_index: tuple[int, int], salt: int
) -> None:
    size, index = size_index
    leaves = leaves_for(size)
    root = root_from_leaf_hashes(leaves)
    oracle = RecordingOracle(leaves)
    proof = inclusion_proof(index, size, oracle)
    assert proof == ref_path(index, leaves)
    assert oracle.calls <= 2 * size.bit_length()  # O(log n) stored-node reads
    verify_inclusion(index, size, leaves[index], proof, root)
    # A tree size is bound by the signed checkpoint, not by the proof: only sizes that change
    # the tree's shape (x2, /2, as in transparency-dev's probes) must make the proof fail.
    wrong: list[tuple[int, int, list[bytes]]] = [
        (index, size, [*proof, SOME_HASH]),
        (index, size * 2, proof),
        (index, size // 2, proof),
        (index - 1, size, proof),
        (index + 1, size, proof),
        (index ^ 2, size, proof),
    ]
    if proof:
        wrong += [(index, size, _flip(proof, salt % len(proof))), (index, size, proof[:-1])]
    for i, n, p in wrong:
        with pytest.raises(ProofError):
            verify_inclusion(i, n, leaves[index], p, root)


@settings(max_examples=120, deadline=None)
@given(
    st.integers(2, 300).flatmap(lambda n: st.tuples(st.integers(1, n - 1), st.just(n))),
    st.integers(0, 10_000),
)
def test_every_generated_consistency_proof_verifies_and_every_alteration_fails(
    sizes: tuple[int, int], salt: int
) -> None:
    first, second = sizes
    leaves = leaves_for(second)
    r1, r2 = root_from_leaf_hashes(leaves[:first]), root_from_leaf_hashes(leaves)
    oracle = RecordingOracle(leaves)
    proof = consistency_proof(first, second, oracle)
    assert proof == ref_subproof(first, leaves, True)
    assert oracle.calls <= 2 * second.bit_length()
    verify_consistency(first, second, proof, r1, r2)
    wrong = [
        (first, second, _flip(proof, salt % len(proof))),
        (first, second, proof[:-1]),
        (first, second, [*proof, SOME_HASH]),
        (first, second * 2, proof),
        (first - 1, second, proof),
        (first + 1, second, proof),
        (first ^ 2, second, proof),
    ]
    if second // 2 > first:
        wrong.append((first, second // 2, proof))
    for f, s, p in wrong:
        with pytest.raises(ProofError):
            verify_consistency(f, s, p, r1, r2)


# --- the frontier and the node stores ---------------------------------------------------------


def test_compact_range_root_equals_reference_for_every_size_and_survives_persistence() -> None:
    leaves = leaves_for(300)
    cr = CompactRange()
    assert cr.root() == EMPTY_ROOT
    for n, h in enumerate(leaves, start=1):
        cr.append(h)
        assert cr.size == n
        assert len(cr.to_hashes()) == n.bit_count()
        assert cr.root() == root_from_leaf_hashes(leaves[:n])
        if n % 37 == 0:  # reload from storage and carry on
            cr = CompactRange.from_bytes(n, cr.to_bytes())
            assert CompactRange.from_hashes(n, cr.to_hashes()).root() == cr.root()


def test_compact_range_rejects_inconsistent_state() -> None:
    with pytest.raises(ValueError, match="frontier hashes"):
        CompactRange.from_hashes(3, [SOME_HASH])
    with pytest.raises(ValueError, match="whole number"):
        CompactRange.from_bytes(1, b"\x00" * 31)
    with pytest.raises(ValueError, match="not 32"):
        CompactRange().append(b"short")


def test_appending_leaf_7_completes_four_subtrees_reading_three_left_siblings() -> None:
    store = MemoryNodeStore(LEAVES[:7])
    reads: list[NodeKey] = []

    def get_stored(key: NodeKey) -> bytes:
        reads.append(key)
        return store._nodes[key]

    rows = subtree_hashes_completed_by_append(7, LEAVES[7], get_stored)
    assert [key for key, _ in rows] == [(0, 7), (1, 3), (2, 1), (3, 0)]
    assert reads == [(0, 6), (1, 2), (2, 0)]
    assert rows[-1][1] == ROOTS[8]
    assert subtree_hashes_completed_by_append(4, LEAVES[4], get_stored) == [((0, 4), LEAVES[4])]


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 200), st.data())
def test_a_store_built_from_the_append_helper_answers_reference_proofs(
    size: int, data: st.DataObject
) -> None:
    leaves = leaves_for(size)
    table: dict[NodeKey, bytes] = {}  # stands in for merkle_nodes(level, idx, hash)
    for i, h in enumerate(leaves):
        for key, value in subtree_hashes_completed_by_append(i, h, table.__getitem__):
            assert key not in table  # every row is written exactly once
            table[key] = value
    assert len(table) == 2 * size - size.bit_count()

    def oracle(start: int, end: int) -> bytes:
        return table[merkle.node_key(start, end)]

    assert merkle.tree_root(size, oracle) == root_from_leaf_hashes(leaves)
    index = data.draw(st.integers(0, size - 1))
    assert inclusion_proof(index, size, oracle) == ref_path(index, leaves)
    first = data.draw(st.integers(1, size))
    assert consistency_proof(first, size, oracle) == (
        ref_subproof(first, leaves, True) if first < size else []
    )


def test_memory_store_only_answers_perfect_ranges_inside_the_tree() -> None:
    store = MemoryNodeStore(LEAVES[:6])
    assert store.size == 6
    assert store.leaf_hash(5) == LEAVES[5]
    assert store.get_subtree_root(4, 6) == node_hash(LEAVES[4], LEAVES[5])
    with pytest.raises(ValueError, match="not a perfect"):
        store.get_subtree_root(2, 5)
    with pytest.raises(ValueError, match="not a perfect"):
        store.get_subtree_root(2, 6)
    with pytest.raises(ValueError, match="beyond the tree size"):
        store.get_subtree_root(4, 8)
    assert store.root() == ROOTS[6]
    assert store.root(0) == EMPTY_ROOT
    assert merkle.node_key(8, 12) == (2, 2)
