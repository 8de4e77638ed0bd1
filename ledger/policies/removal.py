"""Removal history (REM-1..REM-3), as api-contract.md "Removal history, as of a date D" defines it.

Only final ratings with `rated_on` <= D count. The regulations say "within 3 consecutive
years" / "5 consecutive years" without a measure, so the measure is a named setting:

- `rating-date` (default): compare the dates the final ratings were assigned, both ends
  inclusive. A second rating exactly 3 years after the first counts; Feb 29 + 3 years is
  Feb 28. The three-year window holds ratings with D - 3 years <= rated_on <= D, which is
  rated_on + 3 years >= D, so window and pairs agree when D is Feb 29 (the window of Feb 29
  2020 begins Mar 1 2017: Feb 28 2017 and Feb 29 2020 are a day more than 3 years apart).
- `appraisal-cycle`: compare the fiscal years in which the rated periods ended. "Three
  consecutive years" are cycles at most 2 apart (FY2023 and FY2025 count; FY2022 and FY2025
  do not); "five consecutive years" are cycles at most 4 apart. The window holds the ratings
  of the 3 (or 5) latest cycles completed by D (FY2023-FY2025 for any D from Sep 30 2025 to
  Sep 29 2026); when a later cycle is already rated by D (a period ended early), the window
  ends with that cycle instead (FY2024-FY2026), so it never holds two ratings too far apart
  to pair.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal, get_args

from ledger.policies.common import add_years, fiscal_year

#: The named settings of "within 3/5 consecutive years" (the module docstring): the API's
#: settings and query parameter take exactly these.
WindowMeasure = Literal["rating-date", "appraisal-cycle"]
RATING_DATE: WindowMeasure = "rating-date"
APPRAISAL_CYCLE: WindowMeasure = "appraisal-cycle"
WINDOW_MEASURES: tuple[str, ...] = get_args(WindowMeasure)

#: REM-1: the actions that answer a Level 1 final rating.
REM_1_ACTIONS = frozenset({"reassignment", "transfer", "demotion", "removal"})
REM_2_YEARS = 3
REM_3_YEARS = 5
FULLY_SUCCESSFUL = 3


@dataclass(frozen=True)
class FinalRating:
    """One final (annual summary) rating; `period_end` is needed by `appraisal-cycle` only."""

    appraisal_id: str
    level: int
    rated_on: date
    period_end: date | None = None

    @property
    def cycle(self) -> int:
        """The fiscal year the rated period ended in."""
        if self.period_end is None:
            raise ValueError(f"{self.appraisal_id}: appraisal-cycle counting needs period_end")
        return fiscal_year(self.period_end)

    def as_dict(self) -> dict[str, Any]:
        return {
            "appraisal_id": self.appraisal_id,
            "level": self.level,
            "rated_on": self.rated_on.isoformat(),
        }


@dataclass(frozen=True)
class PersonnelAction:
    """A recorded personnel action (the `PersonnelActionRecorded` body)."""

    action: str
    notice_on: date
    effective_on: date | None = None
    basis_appraisal_ids: tuple[str, ...] = ()
    authority: str = ""
    hearing_requested_on: date | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> PersonnelAction:
        """From an `Executive.personnel_actions` entry (dates as `date`)."""
        return cls(
            action=data["action"],
            notice_on=data["notice_on"],
            effective_on=data.get("effective_on"),
            basis_appraisal_ids=tuple(data.get("basis_appraisal_ids") or ()),
            authority=data.get("authority") or "",
            hearing_requested_on=data.get("hearing_requested_on"),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "basis_appraisal_ids": list(self.basis_appraisal_ids),
            "notice_on": self.notice_on.isoformat(),
            "effective_on": None if self.effective_on is None else self.effective_on.isoformat(),
            "authority": self.authority,
            "hearing_requested_on": (
                None if self.hearing_requested_on is None else self.hearing_requested_on.isoformat()
            ),
        }


@dataclass(frozen=True)
class RemovalWindow:
    """`three_year` (REM-2) or `five_year` (REM-3) of the removal history."""

    ratings: tuple[FinalRating, ...]
    removal_required: bool
    triggered_on: date | None
    rule: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "ratings": [r.as_dict() for r in self.ratings],
            "removal_required": self.removal_required,
            "triggered_on": None if self.triggered_on is None else self.triggered_on.isoformat(),
            "rule": self.rule,
        }


@dataclass(frozen=True)
class RemovalHistory:
    """The contract's removal history, without `executive_id` (the caller adds it)."""

    as_of: date
    window_measure: str
    three_year: RemovalWindow
    five_year: RemovalWindow
    level1_action_due: bool
    actions: tuple[PersonnelAction, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (dates as `YYYY-MM-DD`), in the contract's shape."""
        return {
            "as_of": self.as_of.isoformat(),
            "window_measure": self.window_measure,
            "three_year": self.three_year.as_dict(),
            "five_year": self.five_year.as_dict(),
            "level1_action_due": self.level1_action_due,
            "actions": [a.as_dict() for a in self.actions],
        }


def _within(earlier: FinalRating, later: FinalRating, years: int, measure: str) -> bool:
    """Whether two ratings (ordered by date) fall within `years` consecutive years."""
    if measure == APPRAISAL_CYCLE:
        return abs(later.cycle - earlier.cycle) <= years - 1
    return later.rated_on <= add_years(earlier.rated_on, years)


def _latest_cycle(counted: Sequence[FinalRating], as_of: date) -> int:
    """The latest cycle completed by D, or a later one already rated by D (a period ended
    early): the window's newest cycle under `appraisal-cycle`."""
    latest_completed = fiscal_year(as_of + timedelta(days=1)) - 1
    return max([latest_completed, *(r.cycle for r in counted)])


def _in_window(rating: FinalRating, as_of: date, years: int, measure: str, top: int) -> bool:
    if measure == APPRAISAL_CYCLE:
        # `years` cycles back from the newest, as `_within` counts them apart, so that the
        # window never holds two ratings that do not pair (it held four cycles when the
        # newest was rated early)
        return rating.cycle >= top - (years - 1)
    # "D - years <= rated_on", read as `_within` reads "years apart", so that the window
    # holds exactly the ratings a rating on D would pair with: for D = Feb 29 2020 it
    # begins Mar 1 2017 (Feb 28 2017 + 3 years is Feb 28 2020, a day before D).
    return add_years(rating.rated_on, years) >= as_of


def _window(
    counted: Sequence[FinalRating], as_of: date, years: int, measure: str, rule: str
) -> RemovalWindow:
    """`counted` (oldest first, all rated on or before D) judged over `years` years."""
    triggers = [
        later.rated_on
        for i, later in enumerate(counted)
        if any(_within(earlier, later, years, measure) for earlier in counted[:i])
    ]
    top = _latest_cycle(counted, as_of) if measure == APPRAISAL_CYCLE else 0
    return RemovalWindow(
        ratings=tuple(r for r in counted if _in_window(r, as_of, years, measure, top)),
        removal_required=bool(triggers),
        triggered_on=max(triggers, default=None),
        rule=rule,
    )


def _rated_by(ratings: Iterable[FinalRating], as_of: date) -> list[FinalRating]:
    return sorted((r for r in ratings if r.rated_on <= as_of), key=lambda r: r.rated_on)


def removal_history(
    ratings: Iterable[FinalRating],
    actions: Iterable[PersonnelAction],
    *,
    as_of: date,
    window_measure: str = RATING_DATE,
) -> RemovalHistory:
    """REM-1..REM-3 for one executive as of D, per the contract (see the module docstring)."""
    if window_measure not in WINDOW_MEASURES:
        raise ValueError(f"window_measure must be one of {WINDOW_MEASURES}: {window_measure!r}")
    counted = _rated_by(ratings, as_of)
    below = [r for r in counted if r.level < FULLY_SUCCESSFUL]
    level1 = [r for r in counted if r.level == 1]
    recorded = tuple(
        sorted((a for a in actions if a.notice_on <= as_of), key=lambda a: a.notice_on)
    )
    return RemovalHistory(
        as_of=as_of,
        window_measure=window_measure,
        three_year=_window(below, as_of, REM_2_YEARS, window_measure, "REM-2"),
        five_year=_window(level1, as_of, REM_3_YEARS, window_measure, "REM-3"),
        level1_action_due=rem_1_action_due(level1, recorded, as_of),
        actions=recorded,
    )


def rem_1_action_due(
    level1: Sequence[FinalRating], actions: Iterable[PersonnelAction], as_of: date
) -> bool:
    """REM-1: the latest Level 1 rating has no reassignment, transfer, demotion or removal
    noticed between its `rated_on` and D (both inclusive)."""
    if not level1:
        return False
    latest = max(level1, key=lambda r: r.rated_on)
    return not any(
        a.action in REM_1_ACTIONS and latest.rated_on <= a.notice_on <= as_of for a in actions
    )


def years_before(day: date, years: int) -> date:
    """D - `years`, as the windows read it: the earliest date that `years` later
    (`add_years`) is D or after. Feb 29 2024 - 3 years is Mar 1 2021 (Feb 28 2021 + 3 years
    is Feb 28 2024, a day short), where the three-year window begins; Feb 28 2027 - 3 years
    is Feb 28 2024."""
    earlier = add_years(day, -years)
    return earlier if add_years(earlier, years) >= day else earlier + timedelta(days=1)


def below_fully_successful(ratings: Iterable[FinalRating], as_of: date) -> list[FinalRating]:
    """Final ratings below Level 3 rated in (D - 3 years, D], oldest first (the report).

    D - 3 years is the day the three-year window (REM-2) begins, `years_before`: the report
    leaves out exactly that day, also when D is Feb 29."""
    since = years_before(as_of, REM_2_YEARS)
    return [
        r for r in _rated_by(ratings, as_of) if r.level < FULLY_SUCCESSFUL and r.rated_on > since
    ]
