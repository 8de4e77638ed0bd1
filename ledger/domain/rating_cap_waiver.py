"""A presidential waiver of the ses-2025 rating cap (RAT-9) for one agency and cycle."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Self

from ledger.domain.base import LedgerAggregate, LedgerEvent, Submission
from ledger.errors import RuleViolation

_CYCLE = re.compile(r"FY\d{4}")


@dataclass(frozen=True)
class RatingCapWaiverGranted(LedgerEvent):
    creates = True

    agency: str
    cycle: str
    granted_on: date
    reference: str

    def new_aggregate(self) -> RatingCapWaiver:
        return RatingCapWaiver(self.originator_id)

    def apply(self, aggregate: RatingCapWaiver) -> None:
        aggregate.agency = self.agency
        aggregate.cycle = self.cycle
        aggregate.granted_on = self.granted_on
        aggregate.reference = self.reference


class RatingCapWaiver(LedgerAggregate):
    """Once granted, RAT-9 reports no finding for the agency's cycle."""

    kind = "rating_cap_waiver"

    def __init__(self, waiver_id: str) -> None:
        super().__init__(waiver_id)
        self.agency = ""
        self.cycle = ""
        self.granted_on = date.min
        self.reference = ""

    @classmethod
    def grant(
        cls,
        waiver_id: str,
        *,
        agency: str,
        cycle: str,
        granted_on: date,
        reference: str,
        actor: str,
        submission: Submission,
    ) -> Self:
        """`cycle` names a fiscal year, `FY2026` (REG-1, see `ledger.domain.executive`)."""
        if not _CYCLE.fullmatch(cycle):
            raise RuleViolation("REG-1", f"cycle {cycle!r} is not a fiscal year like FY2026.")
        return cls._start(
            RatingCapWaiverGranted,
            waiver_id,
            occurred_on=granted_on,
            actor=actor,
            submission=submission,
            agency=agency,
            cycle=cycle,
            granted_on=granted_on,
            reference=reference,
        )
