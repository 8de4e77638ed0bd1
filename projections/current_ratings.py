"""Current ratings: every executive and appraisal as the contract's reads show them.

Tables (one row per stream, the JSON `doc` is the contract body; the other columns index it):
- `proj_cr_executives(executive_id, agency, career, doc)`: registration fields,
  `current_rating` (the final rating of the latest period: by `period_end`, then
  `rated_on`, then position; a backfilled earlier period never replaces it) and `version`.
- `proj_cr_appraisals(appraisal_id, executive_id, policy, period_end, final_level,
  final_rated_on, final_position, doc)`: the appraisal body, `stage` as the domain defines
  it (`ledger.domain.appraisal.STAGES`: the furthest step reached). The plan's `elements`
  never change and are the bulk of an appraisal, so they are not copied: reads take them
  from the `PlanSet` entry itself (`EventLog.first`).
- `proj_cr_waivers(agency, cycle, doc)`: presidential waivers of the rating cap (RAT-9).

The reports (`projections/reports.py`) query these tables too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ledger.domain import EVENT_TYPES
from ledger.domain.appraisal import (
    FINAL,
    HIGHER_LEVEL_REVIEW,
    INITIALLY_RATED,
    MONITORING,
    PLANNED,
    PRB_RECOMMENDED,
    RESPONSE_CLOSED,
    STAGES,
)
from projections.base import Projection
from projections.events import Event
from projections.store import INT, JSON, TEXT, Table
from projections.views import FinalRatingData, InitialRatingData, PeriodExtendedData, PlanSetData

EXECUTIVES = Table(
    "proj_cr_executives",
    (("executive_id", TEXT), ("agency", TEXT), ("career", INT), ("doc", JSON)),
    ("executive_id",),
    (("agency",),),
)
APPRAISALS = Table(
    "proj_cr_appraisals",
    (
        ("appraisal_id", TEXT),
        ("executive_id", TEXT),
        ("policy", TEXT),
        ("period_end", TEXT),
        ("final_level", INT),
        ("final_rated_on", TEXT),
        ("final_position", INT),
        ("doc", JSON),
    ),
    ("appraisal_id",),
    (("executive_id",), ("final_rated_on",), ("period_end",)),
)
WAIVERS = Table(
    "proj_cr_waivers",
    (("agency", TEXT), ("cycle", TEXT), ("doc", JSON)),
    ("agency", "cycle"),
)

REGISTRATION_FIELDS = (
    "executive_id",
    "name",
    "title",
    "pay_plan",
    "agency",
    "duty_station",
    "appointment_type",
    "probationary",
    "appointed_on",
)
_RANK = {stage: i for i, stage in enumerate(STAGES)}
#: The step each appraisal event reaches (events not listed leave the stage alone).
STAGE_OF = {
    "PlanSet": PLANNED,
    "ProgressReviewed": MONITORING,
    "InitialRatingIssued": INITIALLY_RATED,
    "ExecutiveResponded": RESPONSE_CLOSED,
    "ResponseWaived": RESPONSE_CLOSED,
    "HigherLevelReviewRequested": HIGHER_LEVEL_REVIEW,
    "PRBRecommended": PRB_RECOMMENDED,
    "FinalRatingAssigned": FINAL,
}
#: Event types of each stream kind, from the domain (an unknown type is looked up in both).
APPRAISAL_EVENTS = frozenset(
    n for n, c in EVENT_TYPES.items() if c.__module__ == "ledger.domain.appraisal"
)
NON_APPRAISAL_EVENTS = frozenset(
    n for n, c in EVENT_TYPES.items() if c.__module__ != "ledger.domain.appraisal"
)


class CurrentRatings(Projection):
    name = "current_ratings"
    cost = 7.0
    version = 2  # 2: current_rating by period, not by rating date
    tables = (EXECUTIVES, APPRAISALS, WAIVERS)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.executives = self.rows[EXECUTIVES.name]
        self.appraisals = self.rows[APPRAISALS.name]
        self.waivers = self.rows[WAIVERS.name]

    # -- executives ------------------------------------------------------------------------

    def ExecutiveRegistered(self, e: Event) -> None:  # noqa: N802 - named after the event
        data = e.data
        doc: dict[str, Any] = {f: data.get(f) for f in REGISTRATION_FIELDS}
        doc["executive_id"] = e.stream_id
        doc["current_rating"] = None
        doc["version"] = e.version
        self.executives.put(
            e.stream_id,
            {
                "executive_id": e.stream_id,
                "agency": data.get("agency"),
                "career": int(data.get("appointment_type") == "career"),
                "doc": doc,
            },
        )

    def RatingCapWaiverGranted(self, e: Event) -> None:  # noqa: N802
        data = e.data
        key = (data["agency"], data["cycle"])
        self.waivers.put(
            key,
            {
                "agency": data["agency"],
                "cycle": data["cycle"],
                "doc": {
                    "granted_on": data.get("granted_on"),
                    "reference": data.get("reference"),
                    "position": e.position,
                },
            },
        )

    # -- appraisals ------------------------------------------------------------------------

    def PlanSet(self, e: Event) -> None:  # noqa: N802
        data = e.view(PlanSetData)
        policy = e.policy
        doc = {
            "appraisal_id": e.stream_id,
            "executive_id": data.executive_id,
            "policy": policy,
            "stage": PLANNED,
            "period_start": data.period_start,
            "period_end": data.period_end,
            "rating_official_id": data.rating_official_id,
            "communicated_on": data.communicated_on,
            "initial_rating": None,
            "final_rating": None,
            "version": e.version,
        }
        self.appraisals.put(
            e.stream_id,
            {
                "appraisal_id": e.stream_id,
                "executive_id": data.executive_id,
                "policy": policy,
                "period_end": data.period_end,
                "final_level": None,
                "final_rated_on": None,
                "final_position": None,
                "doc": doc,
            },
        )

    def PeriodExtended(self, e: Event) -> None:  # noqa: N802
        row = self.appraisals.get(e.stream_id)
        if row is not None:
            row["period_end"] = row["doc"]["period_end"] = e.view(PeriodExtendedData).new_period_end

    def InitialRatingIssued(self, e: Event) -> None:  # noqa: N802
        row = self.appraisals.get(e.stream_id)
        if row is not None:
            data = e.view(InitialRatingData)
            row["doc"]["initial_rating"] = {
                "element_levels": data.element_levels,
                "score": data.score,
                "summary_level": data.summary_level,
                "rated_on": data.rated_on,
                "shared_on": data.shared_on,
            }

    def FinalRatingAssigned(self, e: Event) -> None:  # noqa: N802
        row = self.appraisals.get(e.stream_id)
        if row is None:
            return
        data = e.view(FinalRatingData)
        doc = row["doc"]
        doc["final_rating"] = {"level": data.level, "rated_on": data.rated_on, "score": data.score}
        row["final_level"] = data.level
        row["final_rated_on"] = data.rated_on
        row["final_position"] = e.position
        executive = self.executives.get(doc["executive_id"])
        if executive is None:
            return
        current = executive["doc"]["current_rating"]
        if current is not None and (
            current["period_end"],
            current["rated_on"],
            current["position"],
        ) > (doc["period_end"], data.rated_on, e.position):
            return
        executive["doc"]["current_rating"] = {
            "appraisal_id": e.stream_id,
            "level": data.level,
            "score": data.score,
            "rated_on": data.rated_on,
            "policy": doc["policy"],
            "period_start": doc["period_start"],
            "period_end": doc["period_end"],
            "position": e.position,
        }
        self.executives.touch(executive["executive_id"])

    # -- every event: versions and stages --------------------------------------------------

    def process_all(self, events: Sequence[Event]) -> None:
        """Handlers in order; then, once per stream of the batch, its latest version and the
        furthest stage reached (the same result as per event: the version is the last one's
        and the stage only moves forward), which keeps this per-event loop short."""
        handlers = self.handlers()
        latest: dict[str, Event] = {}
        reached: dict[str, int] = {}
        for event in events:
            kind = event.type
            handler = handlers.get(kind)
            if handler is not None:
                handler(event)
            stream = event.stream_id
            latest[stream] = event
            stage = STAGE_OF.get(kind)
            if stage is not None and _RANK[stage] > reached.get(stream, -1):
                reached[stream] = _RANK[stage]
        for stream, event in latest.items():
            self._advance(stream, event, reached.get(stream))

    def _advance(self, stream: str, event: Event, rank: int | None) -> None:
        if event.type not in NON_APPRAISAL_EVENTS:
            row = self.appraisals.get(stream)
            if row is not None:
                doc = row["doc"]
                doc["version"] = event.version
                if rank is not None and rank > _RANK[doc["stage"]]:
                    doc["stage"] = STAGES[rank]
                self.appraisals.touch(stream)
                return
        if event.type not in APPRAISAL_EVENTS:
            executive = self.executives.get(stream)
            if executive is not None:
                executive["doc"]["version"] = event.version
                self.executives.touch(stream)


def public_executive(doc: dict[str, Any]) -> dict[str, Any]:
    """The contract's executive body (internal bookkeeping removed)."""
    out = dict(doc)
    current = out.get("current_rating")
    if current is not None:
        out["current_rating"] = {k: v for k, v in current.items() if k != "position"}
    return out
