"""Reports over the current-ratings tables: below Fully Successful, rating distribution.

SQL only narrows the rows (indexed by rating date or period end); which ratings count is
decided by the policy functions: `ledger.policies.removal.below_fully_successful` and
`ledger.policies.compliance.rating_distribution` / `rat_9`, with cycles named by
`ledger.policies.common.cycle_of`.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import date
from typing import Any

from ledger.policies.common import cycle_of, fiscal_year_bounds
from ledger.policies.compliance import CycleRating, rat_9, rating_distribution
from ledger.policies.removal import (
    FULLY_SUCCESSFUL,
    REM_2_YEARS,
    FinalRating,
    below_fully_successful,
    years_before,
)
from projections.current_ratings import APPRAISALS, EXECUTIVES, WAIVERS
from projections.store import Store, loads

_CYCLE = re.compile(r"FY(\d{4})")
REPORT_FIELDS = ("name", "title", "pay_plan", "agency", "duty_station")


def below_fully_successful_report(
    store: Store, as_of: date, agency: str | None = None
) -> dict[str, Any]:
    """Every executive with a final rating below Level 3 rated in (D - 3 years, D]."""
    a, e, p = store.name(APPRAISALS.name), store.name(EXECUTIVES.name), store.p
    sql = (
        f"SELECT a.appraisal_id AS appraisal_id, a.executive_id AS executive_id, "
        f"a.final_level AS level, a.final_rated_on AS rated_on, e.doc AS doc "
        f"FROM {a} a JOIN {e} e ON e.executive_id = a.executive_id "
        f"WHERE a.final_level < {p} AND a.final_rated_on > {p} AND a.final_rated_on <= {p}"
    )
    params: list[Any] = [
        FULLY_SUCCESSFUL,
        years_before(as_of, REM_2_YEARS).isoformat(),
        as_of.isoformat(),
    ]
    if agency is not None:
        sql += f" AND e.agency = {p}"
        params.append(agency)
    sql += " ORDER BY a.executive_id, a.final_rated_on, a.final_position"
    with store.transaction(commit=False) as cursor:
        cursor.execute(sql, tuple(params))
        rows = cursor.fetchall()
    ratings: dict[str, list[FinalRating]] = defaultdict(list)
    docs: dict[str, dict[str, Any]] = {}
    for row in rows:
        executive_id = str(row["executive_id"])
        if executive_id not in docs:
            docs[executive_id] = loads(row["doc"])
        ratings[executive_id].append(
            FinalRating(
                appraisal_id=str(row["appraisal_id"]),
                level=int(row["level"]),
                rated_on=date.fromisoformat(row["rated_on"]),
            )
        )
    executives = []
    for executive_id in sorted(ratings, key=lambda x: x.encode()):
        listed = below_fully_successful(ratings[executive_id], as_of)
        if not listed:
            continue
        doc = docs[executive_id]
        executives.append(
            {
                "executive_id": executive_id,
                **{f: doc.get(f) for f in REPORT_FIELDS},
                "ratings": [r.as_dict() for r in listed],
            }
        )
    return {"as_of": as_of.isoformat(), "executives": executives}


def cycle_bounds(cycle: str) -> tuple[str, str]:
    """The widest `period_end` range of a cycle name (`FY2026`): used only to narrow SQL."""
    match = _CYCLE.fullmatch(cycle)
    if match is None:
        raise ValueError(f"a cycle is written FYnnnn, e.g. FY2026: {cycle!r}")
    first, last = fiscal_year_bounds(int(match.group(1)))
    return first.isoformat(), last.isoformat()


def cycle_ratings(
    store: Store,
    cursor: Any,
    agency: str | None = None,
    cycle: str | None = None,
    rated_by: date | None = None,
) -> dict[tuple[str, str], list[CycleRating]]:
    """Final ratings by (agency, cycle), as RAT-9 and the distribution take them: oldest
    period first."""
    a, e, p = store.name(APPRAISALS.name), store.name(EXECUTIVES.name), store.p
    sql = (
        f"SELECT a.appraisal_id AS appraisal_id, a.executive_id AS executive_id, "
        f"a.policy AS policy, a.final_level AS level, a.period_end AS period_end, "
        f"e.agency AS agency, e.career AS career "
        f"FROM {a} a JOIN {e} e ON e.executive_id = a.executive_id "
        f"WHERE a.final_level IS NOT NULL"
    )
    params: list[Any] = []
    if agency is not None:
        sql += f" AND e.agency = {p}"
        params.append(agency)
    if cycle is not None:
        first, last = cycle_bounds(cycle)
        sql += f" AND a.period_end >= {p} AND a.period_end <= {p}"
        params += [first, last]
    if rated_by is not None:
        sql += f" AND a.final_rated_on <= {p}"
        params.append(rated_by.isoformat())
    # By period, then rating date, then log order (as `current_rating` is chosen): each
    # executive's last rating here is their latest period's, whatever order HR recorded
    # the periods in (`career_executives` counts an executive by their last rating).
    sql += " ORDER BY a.period_end, a.final_rated_on, a.final_position"
    cursor.execute(sql, tuple(params))
    grouped: dict[tuple[str, str], list[CycleRating]] = defaultdict(list)
    for row in cursor.fetchall():
        row_cycle = cycle_of(date.fromisoformat(row["period_end"]))
        if cycle is not None and row_cycle != cycle:
            continue
        grouped[(str(row["agency"]), row_cycle)].append(
            CycleRating(
                appraisal_id=str(row["appraisal_id"]),
                executive_id=str(row["executive_id"]),
                policy=str(row["policy"]),
                level=int(row["level"]),
                career=bool(row["career"]),
            )
        )
    return grouped


def waivers(store: Store, cursor: Any, granted_by: date | None = None) -> set[tuple[str, str]]:
    """(agency, cycle) of every rating-cap waiver (granted on or before `granted_by`)."""
    cursor.execute(
        f"SELECT agency AS agency, cycle AS cycle, doc AS doc FROM {store.name(WAIVERS.name)}"
    )
    return {
        (str(r["agency"]), str(r["cycle"]))
        for r in cursor.fetchall()
        if granted_by is None or loads(r["doc"])["granted_on"] <= granted_by.isoformat()
    }


def rating_distribution_report(
    store: Store, agency: str, cycle: str, as_of: date | None = None
) -> dict[str, Any]:
    """Counts of every final rating, the career share at Levels 4-5 and RAT-9 findings, as
    of `as_of` (None: everything recorded): a final rating counts once assigned (`rated_on`
    on or before it) and a waiver once granted (`granted_on` on or before it), as the
    compliance report judges RAT-9."""
    with store.transaction(commit=False) as cursor:
        store.snapshot(cursor)
        grouped = cycle_ratings(store, cursor, agency=agency, cycle=cycle, rated_by=as_of)
        ratings = grouped.get((agency, cycle), [])
        waived = (agency, cycle) in waivers(store, cursor, granted_by=as_of)
    distribution = rating_distribution(ratings)
    findings = rat_9(agency, cycle, ratings=ratings, waiver_granted=waived)
    return {
        "agency": agency,
        "cycle": cycle,
        "counts": distribution["counts"],
        "share_levels_4_5": distribution["share_levels_4_5"],
        "findings": [dict(f) for f in findings],
    }
