"""Reads of the Merkle log kept by `ledger.recorders`: sizes, roots, proofs, checkpoints.

Proofs cost O(log n) point reads of stored perfect subtrees (`ledger.merkle` only asks for
those). Checkpoints are C2SP tlog-checkpoint notes, signed with the ledger key under the
origin name, and all of them are kept.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ledger.checkpoint import Checkpoint, sign_checkpoint
from ledger.entry import event_hash_bytes, format_timestamp
from ledger.errors import LedgerError
from ledger.keys import Signer
from ledger.merkle import (
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    node_key,
    tree_root,
)


class ProofUnavailable(LedgerError):
    """The requested proof does not exist (unknown position, size beyond the tree)."""


@dataclass(frozen=True)
class StoredCheckpoint:
    tree_size: int
    root: bytes
    note: str
    issued_at: str


class MerkleLog:
    def __init__(self, recorder: Any) -> None:
        self.recorder = recorder
        self.t = recorder.tables
        self.p = self.t.p
        self._cached_size = -1
        self._cache: dict[tuple[int, int], bytes] = {}

    def _cursor(self) -> Any:
        return self.recorder.datastore.transaction(commit=False)

    def size(self) -> int:
        """Leaves integrated so far (events committed later are integrated on demand)."""
        with self._cursor() as c:
            c.execute(f"SELECT tree_size AS n FROM {self.t.state} WHERE id=1")
            row = c.fetchone()
        return 0 if row is None else int(row["n"])

    def pending(self) -> bool:
        """True when committed events wait to be integrated."""
        with self._cursor() as c:
            c.execute(f"SELECT last_position AS p FROM {self.t.state} WHERE id=1")
            row = c.fetchone()
        last = 0 if row is None else int(row["p"])
        return bool(self.recorder.select_notifications(start=last + 1, limit=1))

    def integrate(self, batch: int = 5000) -> int:
        """Append every committed event not yet in the tree, in global order; the new size.

        Each batch is one transaction holding the state row's lock, so concurrent
        integrators (API, projector, CLI) serialise and a crash leaves a consistent prefix.
        """
        while self._integrate_batch(batch) == batch:
            pass
        return self.size()

    def _lock_state(self, c: Any) -> tuple[int, int]:
        if self.p == "?":  # SQLite: the first write takes the database's single write lock
            c.execute(f"UPDATE {self.t.state} SET tree_size = tree_size WHERE id=1")
            c.execute(f"SELECT tree_size AS n, last_position AS p FROM {self.t.state} WHERE id=1")
        else:
            c.execute(
                f"SELECT tree_size AS n, last_position AS p FROM {self.t.state} "
                "WHERE id=1 FOR UPDATE"
            )
        row = c.fetchone()
        return int(row["n"]), int(row["p"])

    def _frontier(self, c: Any, size: int) -> dict[tuple[int, int], bytes]:
        """The left siblings future appends need: one stored node per set bit of `size`."""
        if self._cached_size == size:
            return self._cache
        frontier: dict[tuple[int, int], bytes] = {}
        for k in range(size.bit_length()):
            if (size >> k) & 1:
                idx = (size >> k) - 1
                if k == 0:
                    c.execute(self.t.get_leaf, (idx,))
                else:
                    c.execute(self.t.get_node, (k, idx))
                row = c.fetchone()
                if row is None:
                    raise ProofUnavailable(f"the Merkle node ({k}, {idx}) is missing")
                frontier[(k, idx)] = bytes(row["h"])
        return frontier

    def _integrate_batch(self, batch: int) -> int:
        with self.recorder.datastore.transaction(commit=True) as c:
            size, last = self._lock_state(c)
            # Read through the same cursor: a second connection inside this write
            # transaction would wait on the SQLite pool's writer slot.
            c.execute(self.t.select_after, (last, batch))
            rows = c.fetchall()
            if not rows:
                return 0
            # The append loop of `subtree_hashes_completed_by_append`, inlined over the
            # frontier (it runs once per event): appending leaf i completes node (k, i >> k)
            # for each trailing 1-bit of i, whose left sibling is the frontier node of level
            # k-1, and the last node completed joins the frontier at its level. `left[k]` is
            # the frontier node (k, (size >> k) - 1) whenever bit k of `size` is set.
            left = {level: h for (level, _), h in self._frontier(c, size).items()}
            leaves: list[tuple[int, int, bytes]] = []
            nodes: list[tuple[int, int, bytes]] = []
            for r in rows:
                h = leaf_hash(event_hash_bytes(bytes(r["s"])))
                leaves.append((size, int(r["id"]), h))
                level, idx = 0, size
                while idx & 1:
                    h = node_hash(left[level], h)
                    level, idx = level + 1, idx >> 1
                    nodes.append((level, idx, h))
                left[level] = h
                size += 1
            c.executemany(self.t.put_leaf, leaves)
            if nodes:
                c.executemany(self.t.put_node, nodes)
            c.execute(
                f"UPDATE {self.t.state} SET tree_size={self.p}, last_position={self.p} WHERE id=1",
                (size, int(rows[-1]["id"])),
            )
        self._cache = {
            (k, (size >> k) - 1): left[k] for k in range(size.bit_length()) if (size >> k) & 1
        }
        self._cached_size = size
        return len(rows)

    def _oracle(self, cursor: Any) -> Any:
        def get(start: int, end: int) -> bytes:
            level, idx = node_key(start, end)
            if level == 0:
                cursor.execute(self.t.get_leaf, (idx,))
            else:
                cursor.execute(
                    self.t.get_node,
                    (level, idx),
                )
            row = cursor.fetchone()
            if row is None:
                raise ProofUnavailable(f"the Merkle node ({level}, {idx}) is not stored")
            return bytes(row["h"])

        return get

    def root(self, size: int) -> bytes:
        with self._cursor() as c:
            return tree_root(size, self._oracle(c))

    def leaf_index(self, position: int) -> int:
        with self._cursor() as c:
            c.execute(
                f"SELECT leaf_index AS i FROM {self.t.leaves} WHERE position={self.p}",
                (position,),
            )
            row = c.fetchone()
        if row is None:
            raise ProofUnavailable(f"there is no event at position {position}")
        return int(row["i"])

    def inclusion(self, position: int, tree_size: int) -> dict[str, Any]:
        index = self.leaf_index(position)
        self._check_size(tree_size)
        if index >= tree_size:
            raise ProofUnavailable(
                f"position {position} is leaf {index}, outside a tree of size {tree_size}"
            )
        with self._cursor() as c:
            hashes = inclusion_proof(index, tree_size, self._oracle(c))
        return {"leaf_index": index, "tree_size": tree_size, "hashes": _b64(hashes)}

    def consistency(self, first: int, second: int) -> dict[str, Any]:
        self._check_size(second)
        if not 0 < first <= second:
            raise ProofUnavailable(f"no consistency proof from size {first} to size {second}")
        with self._cursor() as c:
            hashes = consistency_proof(first, second, self._oracle(c))
        return {"first": first, "second": second, "hashes": _b64(hashes)}

    def _check_size(self, tree_size: int) -> None:
        size = self.size()
        if tree_size > size:
            size = self.integrate()
        if not 0 < tree_size <= size:
            raise ProofUnavailable(f"tree size {tree_size} is not between 1 and {size}")

    # -- checkpoints -------------------------------------------------------------------

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        with self._cursor() as c:
            c.execute(
                "SELECT tree_size AS n, root AS r, note AS t, issued_at AS a "
                f"FROM {self.t.checkpoints} ORDER BY tree_size DESC LIMIT 1"
            )
            row = c.fetchone()
        if row is None:
            return None
        return StoredCheckpoint(int(row["n"]), bytes(row["r"]), str(row["t"]), str(row["a"]))

    def checkpoint_at_least(self, tree_size: int) -> StoredCheckpoint | None:
        """The earliest stored checkpoint covering `tree_size` leaves."""
        with self._cursor() as c:
            c.execute(
                "SELECT tree_size AS n, root AS r, note AS t, issued_at AS a FROM "
                f"{self.t.checkpoints} WHERE tree_size >= {self.p} ORDER BY tree_size LIMIT 1",
                (tree_size,),
            )
            row = c.fetchone()
        if row is None:
            return None
        return StoredCheckpoint(int(row["n"]), bytes(row["r"]), str(row["t"]), str(row["a"]))

    def checkpoint_sizes_near(self, tree_size: int, few: int = 3) -> tuple[list[int], int]:
        """The tree sizes of up to `few` stored checkpoints either side of `tree_size`
        (ascending), and how many are stored: to name the ones that exist."""
        sizes: list[int] = []
        with self._cursor() as c:
            c.execute(f"SELECT count(*) AS n FROM {self.t.checkpoints}")
            total = int(c.fetchone()["n"])
            for where, order in (("<", "DESC"), (">=", "ASC")):
                c.execute(
                    f"SELECT tree_size AS n FROM {self.t.checkpoints} "
                    f"WHERE tree_size {where} {self.p} ORDER BY tree_size {order} LIMIT {few}",
                    (tree_size,),
                )
                sizes += [int(row["n"]) for row in c.fetchall()]
        return sorted(sizes), total

    def issue_checkpoint(
        self, signer: Signer | Callable[[], Signer], origin: str, min_growth: int = 1
    ) -> StoredCheckpoint | None:
        """Integrate, then sign and keep a checkpoint of the tree if it grew by `min_growth`.

        `signer`: the key, or a function giving the current one (`LedgerApp.signer`), asked
        once the tree is integrated: a key taken before could be retired by `keys rotate`
        while the tree took in entries signed after that with the new key, and the
        checkpoint over them was signed with the retired key, after its `valid_until`.

        Returns the latest checkpoint (new or not), or None for an empty ledger.
        """
        size = self.integrate()
        latest = self.latest_checkpoint()
        if size == 0 or (latest is not None and size - latest.tree_size < min_growth):
            return latest
        root = self.root(size)
        key = signer() if callable(signer) else signer
        note = sign_checkpoint(Checkpoint(origin, size, root), origin, key.private_key)
        issued_at = format_timestamp(datetime.now(UTC))
        conflict = "OR IGNORE " if self.p == "?" else ""
        tail = "" if self.p == "?" else " ON CONFLICT (tree_size) DO NOTHING"
        p = self.p
        with self.recorder.datastore.transaction(commit=True) as c:
            c.execute(
                f"INSERT {conflict}INTO {self.t.checkpoints} (tree_size, root, note, issued_at) "
                f"VALUES ({p},{p},{p},{p}){tail}",
                (size, root, note, issued_at),
            )
        return self.latest_checkpoint()


def _b64(hashes: list[bytes]) -> list[str]:
    return [base64.b64encode(h).decode() for h in hashes]
