"""Compliance findings: every rule marked *flag* in rules.md, via `ledger.policies.compliance`.

Findings that a record settles once and for all are computed when the projection processes
the record and stored with the date they became true (`on`): PLAN-1..3 (the plan), PER-5 (a
detail appraisal; `on` = its appraisal date), MON-1 for a period that has ended, REM-6 (a
removal; `on` = its notice date). Findings that depend on the date asked about are computed
at query time from stored facts: MON-1 for a period still running, REM-1..REM-3 (from the
removal-history projection's rows), RAT-9 (from the current-ratings rows and waivers) and
RAT-10 (transfers against the appraisal ids each initial rating's narrative cites: the
narrative itself is not kept). RAT-11 has no recorded pay to judge: no event carries a pay
increase yet.

Tables:
- `proj_cp_executives(executive_id, agency, career, watch, doc)`: `doc` = {appraisal_ids,
  transfers: [effective_on], findings}; `watch` = has findings or transfers.
- `proj_cp_appraisals(appraisal_id, executive_id, agency, period_end, flagged, doc)`: `doc`
  = the facts MON-1, PER-5 and RAT-10 need, `plan_findings` (PLAN-1..3, from the plan) and
  `findings` (PER-5, and MON-1 as once the period has ended); `flagged` = has either.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

from ledger.policies.compliance import (
    Finding,
    cites,
    mon_1,
    per_5,
    plan_1,
    plan_2,
    plan_3,
    rat_9,
    rat_10,
    rat_10_former_appraisals,
    rem_6,
    removal_findings,
)
from ledger.policies.removal import RATING_DATE
from projections import removal_history
from projections.base import Projection
from projections.events import Event
from projections.reports import cycle_ratings, waivers
from projections.store import INT, JSON, TEXT, Store, Table, loads
from projections.views import InitialRatingData, PeriodExtendedData, PlanSetData

EXECUTIVES = Table(
    "proj_cp_executives",
    (("executive_id", TEXT), ("agency", TEXT), ("career", INT), ("watch", INT), ("doc", JSON)),
    ("executive_id",),
    (("agency",),),
)
APPRAISALS = Table(
    "proj_cp_appraisals",
    (
        ("appraisal_id", TEXT),
        ("executive_id", TEXT),
        ("agency", TEXT),
        ("period_end", TEXT),
        ("flagged", INT),
        ("doc", JSON),
    ),
    ("appraisal_id",),
    # By agency for the report; none by executive: nothing reads these rows by it (it cost
    # 0.14 s of the table's 0.8 s write in a 1M-event rebuild).
    (("agency", "period_end"),),
)

DETAIL_FIELDS = ("organization", "started_on", "ended_on", "appraised_on", "level", "summary")


def _dated(findings: Iterable[Finding], on: str) -> list[dict[str, str]]:
    return [
        {"rule": f["rule"], "subject_id": f["subject_id"], "detail": f["detail"], "on": on}
        for f in findings
    ]


def _d(value: str) -> date:
    return date.fromisoformat(value)


class Compliance(Projection):
    name = "compliance"
    cost = 8.0
    # 3: PLAN-2 findings reworded ("states no measurable target or timeline"); 4: PLAN-2 no
    # longer takes a date's digits (a year, FY2024, 2024-09-30) for a target; 5: RAT-10's
    # `cited` holds whole ids only (`cites`: "A-10" no longer cites "A-1")
    version = 5
    tables = (EXECUTIVES, APPRAISALS)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.executives = self.rows[EXECUTIVES.name]
        self.appraisals = self.rows[APPRAISALS.name]

    # -- executives ------------------------------------------------------------------------

    def ExecutiveRegistered(self, e: Event) -> None:  # noqa: N802 - named after the event
        data = e.data
        self.executives.put(
            e.stream_id,
            {
                "executive_id": e.stream_id,
                "agency": data.get("agency"),
                "career": int(data.get("appointment_type") == "career"),
                "watch": 0,
                "doc": {"appraisal_ids": [], "transfers": [], "findings": []},
            },
        )

    def PersonnelActionRecorded(self, e: Event) -> None:  # noqa: N802
        data = e.data
        row = self.executives.get(data.get("executive_id") or e.stream_id)
        if row is None:
            return
        doc = row["doc"]
        if data["action"] == "transfer" and data.get("effective_on"):
            doc["transfers"].append(data["effective_on"])
        found = rem_6(row["executive_id"], is_career=bool(row["career"]), actions=[data])
        doc["findings"].extend(_dated(found, data["notice_on"]))
        row["watch"] = int(bool(doc["findings"] or doc["transfers"]))
        self.executives.touch(row["executive_id"])

    # -- appraisals ------------------------------------------------------------------------

    def PlanSet(self, e: Event) -> None:  # noqa: N802
        data = e.view(PlanSetData)
        executive = self.executives.get(data.executive_id)
        if executive is not None:
            executive["doc"]["appraisal_ids"].append(e.stream_id)
            self.executives.touch(executive["executive_id"])
        policy = e.policy or data.policy or ""
        start, communicated = _d(data.period_start), _d(str(data.communicated_on))
        elements = data.element_list()
        plan = [
            *plan_1(e.stream_id, period_start=start, communicated_on=communicated),
            *plan_2(e.stream_id, policy=policy, elements=elements),
            *plan_3(e.stream_id, policy=policy, elements=elements),
        ]
        self.appraisals.put(
            e.stream_id,
            {
                "appraisal_id": e.stream_id,
                "executive_id": data.executive_id,
                "agency": None if executive is None else executive["agency"],
                "period_end": data.period_end,
                "flagged": 0,
                "doc": {
                    "policy": policy,
                    "period_start": data.period_start,
                    "period_end": data.period_end,
                    "review_dates": [],
                    "detail_appraisals": [],
                    "initial_rated_on": None,
                    "cited": [],
                    "plan_findings": _dated(plan, e.occurred_on),
                    "findings": [],
                },
            },
        )

    def _appraisal(self, e: Event) -> dict[str, Any] | None:
        row = self.appraisals.get(e.stream_id)
        if row is not None:
            self.appraisals.touch(e.stream_id)
        return row

    def ProgressReviewed(self, e: Event) -> None:  # noqa: N802
        row = self._appraisal(e)
        if row is not None:
            row["doc"]["review_dates"].append(e.occurred_on)  # occurred_on is reviewed_on

    def DetailAppraised(self, e: Event) -> None:  # noqa: N802
        row = self._appraisal(e)
        if row is not None:
            data = e.data
            row["doc"]["detail_appraisals"].append({f: data.get(f) for f in DETAIL_FIELDS})

    def PeriodExtended(self, e: Event) -> None:  # noqa: N802
        row = self._appraisal(e)
        if row is not None:
            row["period_end"] = row["doc"]["period_end"] = e.view(PeriodExtendedData).new_period_end

    def InitialRatingIssued(self, e: Event) -> None:  # noqa: N802
        row = self._appraisal(e)
        if row is None:
            return
        data = e.view(InitialRatingData)
        row["doc"]["initial_rated_on"] = data.rated_on
        executive = self.executives.get(row["executive_id"])
        if executive is not None:
            narrative = data.narrative or ""
            # RAT-10's evidence: which of the executive's other appraisals the narrative cites.
            row["doc"]["cited"] = [
                a
                for a in executive["doc"]["appraisal_ids"]
                if a != e.stream_id and a in narrative and cites(narrative, a)
            ]

    def prepare(self) -> None:
        for key in self.appraisals.dirty:
            row = self.appraisals.cache[key]
            if row is not None:
                doc = row["doc"]
                doc["findings"] = settled_appraisal_findings(key, doc)
                row["flagged"] = int(bool(doc["findings"] or doc["plan_findings"]))
        super().prepare()


def settled_appraisal_findings(appraisal_id: str, doc: dict[str, Any]) -> list[dict[str, str]]:
    """PER-5 and MON-1 (for the whole period, as once it has ended); PLAN-1..3 are kept apart,
    in `plan_findings`, computed once from the plan."""
    found: list[dict[str, str]] = []
    initial = doc["initial_rated_on"]
    for detail in doc["detail_appraisals"]:
        parsed = {**detail}
        for f in ("started_on", "ended_on", "appraised_on"):
            parsed[f] = _d(detail[f])
        found += _dated(
            per_5(
                appraisal_id,
                detail_appraisals=[parsed],
                initial_rated_on=None if initial is None else _d(initial),
            ),
            detail["appraised_on"],
        )
    found += _dated(_mon_1(appraisal_id, doc, _d(doc["period_end"]) + timedelta(days=1)), "")
    return found


def _mon_1(appraisal_id: str, doc: dict[str, Any], as_of: date) -> list[Finding]:
    return mon_1(
        appraisal_id,
        policy=doc["policy"],
        period_start=_d(doc["period_start"]),
        period_end=_d(doc["period_end"]),
        review_dates=[_d(x) for x in doc["review_dates"]],
        as_of=as_of,
    )


def _public(finding: Any) -> dict[str, str]:
    return {
        "rule": finding["rule"],
        "subject_id": finding["subject_id"],
        "detail": finding["detail"],
    }


def query(
    store: Store,
    as_of: date,
    agency: str | None = None,
    window_measure: str | None = None,
) -> dict[str, Any]:
    """Every flag-rule finding as of `as_of` (a business date), optionally for one agency."""
    with store.transaction(commit=False) as cursor:
        store.snapshot(cursor)
        findings = [
            *_appraisal_rows_findings(store, cursor, as_of, agency),
            *_executive_rows_findings(store, cursor, as_of, agency),
            *_removal_due(store, cursor, as_of, agency, window_measure or RATING_DATE),
            *_rating_cap(store, cursor, as_of, agency),
        ]
    findings.sort(key=lambda f: (f["rule"], f["subject_id"].encode(), f["detail"]))
    return {"as_of": as_of.isoformat(), "findings": findings}


def _agency_filter(agency: str | None, store: Store, column: str = "agency") -> str:
    return f" AND {column} = {store.p}" if agency is not None else ""


def _agency_params(agency: str | None) -> tuple[Any, ...]:
    return (agency,) if agency is not None else ()


def _appraisal_rows_findings(
    store: Store, cursor: Any, as_of: date, agency: str | None
) -> list[dict[str, str]]:
    """Settled appraisal findings dated by D; MON-1 of periods running at D, live."""
    day = as_of.isoformat()
    findings: list[dict[str, str]] = []
    cursor.execute(
        f"SELECT appraisal_id AS appraisal_id, doc AS doc FROM {store.name(APPRAISALS.name)} "
        f"WHERE (flagged = 1 OR period_end >= {store.p}){_agency_filter(agency, store)}",
        (day, *_agency_params(agency)),
    )
    for row in cursor.fetchall():
        doc = loads(row["doc"])
        ended = _d(doc["period_end"]) < as_of
        for f in doc["plan_findings"] + doc["findings"]:
            if f["rule"] == "MON-1":
                if ended:
                    findings.append(_public(f))
            elif f["on"] <= day:
                findings.append(_public(f))
        if not ended:
            findings += [_public(f) for f in _mon_1(row["appraisal_id"], doc, as_of)]
    return findings


def _executive_rows_findings(
    store: Store, cursor: Any, as_of: date, agency: str | None
) -> list[dict[str, str]]:
    """REM-6 by notice date; RAT-10 where a transfer is recorded."""
    day = as_of.isoformat()
    findings: list[dict[str, str]] = []
    cursor.execute(
        f"SELECT executive_id AS executive_id, doc AS doc "
        f"FROM {store.name(EXECUTIVES.name)} WHERE watch = 1{_agency_filter(agency, store)}",
        _agency_params(agency),
    )
    for row in cursor.fetchall():
        doc = loads(row["doc"])
        findings += [_public(f) for f in doc["findings"] if f["on"] <= day]
        transfers = [_d(t) for t in doc["transfers"] if t <= day]
        if transfers:
            findings += _rat_10(store, cursor, doc["appraisal_ids"], transfers, day)
    return findings


def _removal_due(
    store: Store, cursor: Any, as_of: date, agency: str | None, window_measure: str
) -> list[dict[str, str]]:
    """REM-1..REM-3 from the removal histories of executives with a low rating."""
    rh = store.name(removal_history.EXECUTIVES.name)
    cp = store.name(EXECUTIVES.name)
    cursor.execute(
        f"SELECT rh.executive_id AS executive_id, rh.doc AS doc FROM {rh} rh "
        f"JOIN {cp} cp ON cp.executive_id = rh.executive_id "
        f"WHERE rh.has_low = 1{_agency_filter(agency, store, 'cp.agency')}",
        _agency_params(agency),
    )
    findings: list[dict[str, str]] = []
    for row in cursor.fetchall():
        history = removal_history.history_from_doc(loads(row["doc"]), as_of, window_measure)
        findings += [_public(f) for f in removal_findings(row["executive_id"], history)]
    return findings


def _rating_cap(store: Store, cursor: Any, as_of: date, agency: str | None) -> list[dict[str, str]]:
    """RAT-9 for every agency and cycle with final ratings by D."""
    waived = waivers(store, cursor, granted_by=as_of)
    grouped = cycle_ratings(store, cursor, agency=agency, rated_by=as_of)
    findings: list[dict[str, str]] = []
    for (group_agency, cycle), ratings in grouped.items():
        found = rat_9(
            group_agency, cycle, ratings=ratings, waiver_granted=(group_agency, cycle) in waived
        )
        findings += [_public(f) for f in found]
    return findings


def _rat_10(
    store: Store, cursor: Any, appraisal_ids: list[str], transfers: list[date], day: str
) -> list[dict[str, str]]:
    """RAT-10 for each of the executive's appraisals initially rated by D."""
    if not appraisal_ids:
        return []
    marks = ", ".join([store.p] * len(appraisal_ids))
    cursor.execute(
        f"SELECT appraisal_id AS appraisal_id, doc AS doc FROM {store.name(APPRAISALS.name)} "
        f"WHERE appraisal_id IN ({marks})",
        tuple(appraisal_ids),
    )
    docs = {str(r["appraisal_id"]): loads(r["doc"]) for r in cursor.fetchall()}
    found: list[dict[str, str]] = []
    for appraisal_id in appraisal_ids:
        doc = docs.get(appraisal_id)
        if doc is None or doc["initial_rated_on"] is None or doc["initial_rated_on"] > day:
            continue
        others = {
            other: _d(docs[other]["period_start"])
            for other in appraisal_ids
            if other != appraisal_id and other in docs
        }
        former = rat_10_former_appraisals(_d(doc["period_start"]), others)
        found += [
            _public(f)
            for f in rat_10(
                appraisal_id,
                period_start=_d(doc["period_start"]),
                initial_rated_on=_d(doc["initial_rated_on"]),
                # The narrative itself is not kept; the appraisal ids it cites are.
                narrative=" ".join(doc["cited"]),
                transfers_effective_on=transfers,
                former_appraisal_ids=former,
            )
        ]
    return found
