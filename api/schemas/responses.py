"""Response bodies the API itself shapes: write results, ledger entries, proofs.

Read-model bodies (executives, appraisals, reports) are shaped by `projections` and
documented in `api.schemas.reads`. All models allow fields they do not list (`Open`), so a
new field is never a breaking change for a client validating against the document.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Open(BaseModel):
    """A documented body that may carry more fields than it lists (add fields freely)."""

    model_config = ConfigDict(extra="allow")


class LedgerEntry(Open):
    position: int
    stream_id: str
    stream_version: int
    type: str
    occurred_on: str
    recorded_at: str
    actor: str
    submitted_by: str
    policy: str | None
    data: dict[str, Any]
    prev_hash: str | None
    hash: str
    signature: str
    key_id: str


class Receipt(Open):
    """Proof of acceptance: the signed hash at a position (its inclusion proof follows at
    `/v1/ledger/receipts/{position}` once a checkpoint covers it)."""

    position: int
    hash: str
    signature: str
    key_id: str


class WriteResult(Open):
    id: str
    version: int
    event: LedgerEntry
    receipt: Receipt


class RatingWriteResult(WriteResult):
    score: int
    summary_level: int


class EventsPage(Open):
    events: list[LedgerEntry]
    next_after: int | None


class InclusionProof(Open):
    leaf_index: int
    tree_size: int
    hashes: list[str]


class ConsistencyProof(Open):
    first: int
    second: int
    hashes: list[str]


class ReceiptOut(Open):
    entry: LedgerEntry
    checkpoint: str
    inclusion_proof: InclusionProof


class VerifyOut(Open):
    ok: bool
    checked: int
    first_bad_position: int | None
    problem: str | None
    #: Beyond api-contract.md: the Merkle tree the events were checked against.
    tree_size: int = Field(description="Leaves of the Merkle tree recomputed from the log.")
    root: str | None = Field(description="Its root hash (base64); null for an empty log.")


class PublicKey(Open):
    key_id: str
    algorithm: str
    public_key: str
    valid_from: str
    valid_until: str | None


class KeysOut(Open):
    keys: list[PublicKey]


class Health(Open):
    status: str
