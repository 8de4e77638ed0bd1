"""OpenAPI documentation of the read-model bodies (api-contract.md, Reads).

These bodies are rendered from the projections' stored JSON (`api.responses.Json`), not
through these models, so a route names its model in `responses` (documented) and never as
its `response_model` (which would filter fields out). That they describe what the API
really sends is tested: every read's body validates against its model in strict mode
(tests/api/test_read_models_documented.py). Dates are ISO 8601 text (`YYYY-MM-DD`).
"""

from __future__ import annotations

from typing import Any

from api.schemas.responses import InclusionProof, LedgerEntry, Open, PublicKey


class CurrentRating(Open):
    appraisal_id: str
    level: int
    score: int | None
    rated_on: str
    policy: str
    period_start: str
    period_end: str


class ExecutiveNamed(Open):
    """Who an executive is and where they serve (registration fields)."""

    executive_id: str
    name: str
    title: str
    pay_plan: str
    agency: str
    duty_station: str


class ExecutiveOut(ExecutiveNamed):
    """The registration fields, the latest final rating and the stream version."""

    appointment_type: str
    probationary: bool
    appointed_on: str
    current_rating: CurrentRating | None
    version: int


class FinalRatingRow(Open):
    appraisal_id: str
    policy: str
    period_start: str
    period_end: str
    level: int
    score: int | None
    rated_on: str


class RatingsOut(Open):
    """Final ratings, oldest first."""

    executive_id: str
    ratings: list[FinalRatingRow]


class RatingRef(Open):
    appraisal_id: str
    level: int
    rated_on: str


class RemovalWindowOut(Open):
    """REM-2 (three years, below Level 3) or REM-3 (five years, Level 1) as of `as_of`."""

    ratings: list[RatingRef]
    removal_required: bool
    triggered_on: str | None
    rule: str


class RemovalHistoryOut(Open):
    executive_id: str
    as_of: str
    window_measure: str
    three_year: RemovalWindowOut
    five_year: RemovalWindowOut
    level1_action_due: bool
    actions: list[dict[str, Any]]


class InitialRatingOut(Open):
    element_levels: dict[str, int]
    score: int
    summary_level: int
    rated_on: str
    shared_on: str


class FinalRatingOut(Open):
    level: int
    rated_on: str
    score: int | None


class AppraisalOut(Open):
    """`stage`: planned, monitoring, initially_rated, response_closed, higher_level_review,
    prb_recommended or final."""

    appraisal_id: str
    executive_id: str
    policy: str
    stage: str
    period_start: str
    period_end: str
    rating_official_id: str
    communicated_on: str
    elements: list[dict[str, Any]]
    initial_rating: InitialRatingOut | None
    final_rating: FinalRatingOut | None
    version: int


class AppraisalEventsOut(Open):
    events: list[LedgerEntry]


class BelowFullySuccessfulRow(ExecutiveNamed):
    ratings: list[RatingRef]


class BelowFullySuccessfulOut(Open):
    """Executives with a final rating below Level 3 rated in (D - 3 years, D]."""

    as_of: str
    executives: list[BelowFullySuccessfulRow]


class FindingOut(Open):
    rule: str
    subject_id: str
    detail: str


class DistributionOut(Open):
    """`counts` per level ("1".."5") cover every final rating of the agency in the cycle;
    `share_levels_4_5` and RAT-9 count career appointees only: the share (0..1) of career
    executives rated at Levels 4-5, null when no career executive was rated in the cycle
    (a share of nobody: 0 would claim that none was rated at 4-5)."""

    agency: str
    cycle: str
    counts: dict[str, int]
    share_levels_4_5: float | None
    findings: list[FindingOut]


class ComplianceOut(Open):
    as_of: str
    findings: list[FindingOut]


class PositionSeal(Open):
    """The ledger's Ed25519 signature (by `key_id`, a bundle key) over `positions`, each
    entry's [position, leaf index], and the bundle checkpoint's head: a position is not
    hashed, so this binds it (`ledger/offline_verify.py`, `position_seal_message`)."""

    key_id: str
    positions: list[list[int]]
    signature: str


class EvidenceBundleOut(Open):
    """`format` is `ses-ledger-bundle/v1`; `proofs` are keyed by ledger position;
    `position_seal` (null when the signing key cannot be loaded) binds each entry's position
    to its leaf index."""

    format: str
    executive_id: str
    entries: list[LedgerEntry]
    keys: list[PublicKey]
    checkpoint: str
    proofs: dict[str, InclusionProof]
    position_seal: PositionSeal | None


class Verification(Open):
    """Checked when read: `None` where a check could not be made (e.g. an unknown key)."""

    ok: bool
    hash_ok: bool | None
    signature_ok: bool | None
    chain_ok: bool | None
    #: `recorded_at` inside the signing key's validity (see docs/api.md, audit trail).
    key_window_ok: bool | None
    problems: list[str]


class AuditItem(Open):
    position: int
    stream_id: str
    stream_version: int
    type: str
    occurred_on: str | None
    recorded_at: str | None
    actor: str | None
    submitted_by: str | None
    policy: str | None
    hash: str | None
    key_id: str | None
    verification: Verification


class AuditTrailOut(Open):
    """Follow `next_after` until it is null (a page may hold fewer than `limit`)."""

    events: list[AuditItem]
    next_after: int | None
