"""Reads of the Merkle log kept by `ledger.recorders`: sizes, roots, proofs, checkpoints.

Proofs cost O(log n) point reads of stored perfect subtrees (`ledger.merkle` only asks for
those). Checkpoints are C2SP tlog-checkpoint notes, signed with the ledger key under the
origin name, and all of them are kept.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ledger.checkpoint import Checkpoint, sign_checkpoint
from ledger.entry import format_timestamp
from ledger.errors import LedgerError
from ledger.keys import Signer
from ledger.merkle import inclusion_proof, consistency_proof, node_key, tree_root


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

    def _cursor(self) -> Any:
        return self.recorder.datastore.transaction(commit=False)

    def size(self) -> int:
        with self._cursor() as c:
            c.execute(self.t.max_leaf)
            row = c.fetchone()
        return 0 if row is None or row["n"] is None else int(row["n"]) + 1

    def _oracle(self, cursor: Any) -> Any:
        def get(start: int, end: int) -> bytes:
            level, idx = node_key(start, end)
            if level == 0:
                cursor.execute(
                    self.t.get_leaf, (idx,)
                )
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

    def issue_checkpoint(self, signer: Signer, origin: str) -> StoredCheckpoint | None:
        """Sign and keep a checkpoint of the current tree; the latest one if nothing is new."""
        size = self.size()
        latest = self.latest_checkpoint()
        if size == 0 or (latest is not None and latest.tree_size >= size):
            return latest
        root = self.root(size)
        note = sign_checkpoint(Checkpoint(origin, size, root), origin, signer.private_key)
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
