"""Removal histories: each executive's final ratings and personnel actions, judged as of a date.

The projection keeps the facts; the rules (REM-1..REM-3, the window measures) are
`ledger.policies.removal.removal_history`, applied at query time for the requested date, so
one set of rows answers "as of" any business date.

Tables:
- `proj_rh_executives(executive_id, has_low, doc)`: `doc` = {ratings: [{appraisal_id, level,
  rated_on, period_end, position}], actions: [PersonnelActionRecorded data + position]} in
  global order; `has_low` = some final rating below Level 3 (compliance scans only those).
- `proj_rh_appraisals(appraisal_id, executive_id, period_end)`: the period end each final
  rating needs for `appraisal-cycle` counting.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from ledger.policies.removal import (
    FULLY_SUCCESSFUL,
    RATING_DATE,
    FinalRating,
    PersonnelAction,
    RemovalHistory,
    removal_history,
)
from projections.base import Projection
from projections.events import Event
from projections.store import INT, JSON, TEXT, Store, Table, loads
from projections.views import FinalRatingData, PeriodExtendedData, PlanSetData

EXECUTIVES = Table(
    "proj_rh_executives",
    (("executive_id", TEXT), ("has_low", INT), ("doc", JSON)),
    ("executive_id",),
    (("has_low",),),
)
APPRAISALS = Table(
    "proj_rh_appraisals",
    (("appraisal_id", TEXT), ("executive_id", TEXT), ("period_end", TEXT)),
    ("appraisal_id",),
)


class RemovalHistories(Projection):
    name = "removal_history"
    cost = 2.5
    version = 1
    tables = (EXECUTIVES, APPRAISALS)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.executives = self.rows[EXECUTIVES.name]
        self.appraisals = self.rows[APPRAISALS.name]

    def _executive(self, executive_id: str) -> dict[str, Any]:
        row = self.executives.get(executive_id)
        if row is None:
            row = {
                "executive_id": executive_id,
                "has_low": 0,
                "doc": {"ratings": [], "actions": []},
            }
        self.executives.put(executive_id, row)
        return row

    def PlanSet(self, e: Event) -> None:  # noqa: N802 - named after the event
        data = e.view(PlanSetData)
        self.appraisals.put(
            e.stream_id,
            {
                "appraisal_id": e.stream_id,
                "executive_id": data.executive_id,
                "period_end": data.period_end,
            },
        )

    def PeriodExtended(self, e: Event) -> None:  # noqa: N802
        row = self.appraisals.get(e.stream_id)
        if row is not None:
            row["period_end"] = e.view(PeriodExtendedData).new_period_end
            self.appraisals.touch(e.stream_id)

    def FinalRatingAssigned(self, e: Event) -> None:  # noqa: N802
        data = e.view(FinalRatingData)
        appraisal = self.appraisals.get(e.stream_id)
        executive_id = data.executive_id or (appraisal or {}).get("executive_id")
        if not executive_id:
            return
        row = self._executive(executive_id)
        row["doc"]["ratings"].append(
            {
                "appraisal_id": e.stream_id,
                "level": data.level,
                "rated_on": data.rated_on,
                "period_end": None if appraisal is None else appraisal["period_end"],
                "position": e.position,
            }
        )
        if data.level < FULLY_SUCCESSFUL:
            row["has_low"] = 1

    def PersonnelActionRecorded(self, e: Event) -> None:  # noqa: N802
        data = e.data
        row = self._executive(data.get("executive_id") or e.stream_id)
        action = {k: v for k, v in data.items() if k != "executive_id"}
        action["position"] = e.position
        row["doc"]["actions"].append(action)


def _day(value: Any) -> date | None:
    return None if value is None else date.fromisoformat(value)


def history_from_doc(doc: dict[str, Any], as_of: date, window_measure: str) -> RemovalHistory:
    """Apply `ledger.policies.removal` to one executive's stored facts."""
    ratings = [
        FinalRating(
            appraisal_id=r["appraisal_id"],
            level=int(r["level"]),
            rated_on=date.fromisoformat(r["rated_on"]),
            period_end=_day(r.get("period_end")),
        )
        for r in doc.get("ratings", [])
    ]
    actions = [
        PersonnelAction(
            action=a["action"],
            notice_on=date.fromisoformat(a["notice_on"]),
            effective_on=_day(a.get("effective_on")),
            basis_appraisal_ids=tuple(a.get("basis_appraisal_ids") or ()),
            authority=a.get("authority") or "",
            hearing_requested_on=_day(a.get("hearing_requested_on")),
        )
        for a in doc.get("actions", [])
    ]
    return removal_history(ratings, actions, as_of=as_of, window_measure=window_measure)


def load_doc(store: Store, cursor: Any, executive_id: str) -> dict[str, Any]:
    cursor.execute(
        f"SELECT doc AS doc FROM {store.name(EXECUTIVES.name)} WHERE executive_id = {store.p}",
        (executive_id,),
    )
    row = cursor.fetchone()
    if row is None:
        return {"ratings": [], "actions": []}
    doc: dict[str, Any] = loads(row["doc"])
    return doc


def query(
    store: Store, executive_id: str, as_of: date, window_measure: str | None = None
) -> dict[str, Any]:
    """The contract's removal-history body for one executive as of `as_of`."""
    with store.transaction(commit=False) as cursor:
        doc = load_doc(store, cursor, executive_id)
    history = history_from_doc(doc, as_of, window_measure or RATING_DATE)
    return {"executive_id": executive_id, **history.as_dict()}
