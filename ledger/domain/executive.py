"""The executive: registration, personnel actions (REM-4, REM-5, REM-7) and complaints (APP-1).

Complaints live here, not on the appraisal: a complaint never changes a rating (APP-1), and
it may be filed after the final rating, when the appraisal accepts nothing more (SEQ-1).

REG-1 is a rule ID this module invents (rules.md has none for it): a field restricted by the
contract to a fixed list of values (`appointment_type`, a personnel `action`) holds one of
them. The API validates bodies first; REG-1 keeps the domain safe when called directly.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType
from typing import Any, Self

from ledger.domain.base import LedgerAggregate, LedgerEvent, Submission
from ledger.errors import RuleViolation
from ledger.policies.common import (
    app_1_check_forum,
    rem_4_check_authority,
    rem_5_check_notice,
    rem_7_check_hearing,
)

CAREER = "career"
APPOINTMENT_TYPES = (CAREER, "noncareer", "limited_term", "limited_emergency")
REMOVAL = "removal"
PERSONNEL_ACTIONS = ("reassignment", "transfer", "demotion", REMOVAL)


def reg_1_check_choice(field: str, value: str, allowed: Sequence[str]) -> None:
    """REG-1 (invented, see module docstring): `value` is one of the contract's `allowed`."""
    if value not in allowed:
        raise RuleViolation("REG-1", f"{field} {value!r} is not one of {', '.join(allowed)}.")


@dataclass(frozen=True)
class ExecutiveFacts:
    """What appraisal commands need to know about the rated executive."""

    executive_id: str
    agency: str
    appointment_type: str
    probationary: bool

    @property
    def is_career(self) -> bool:
        return self.appointment_type == CAREER


@dataclass(frozen=True)
class ExecutiveRegistered(LedgerEvent):
    creates = True

    executive_id: str
    name: str
    title: str
    pay_plan: str
    agency: str
    duty_station: str
    appointment_type: str
    probationary: bool
    appointed_on: date

    def new_aggregate(self) -> Executive:
        return Executive(self.originator_id)

    def apply(self, aggregate: Executive) -> None:
        aggregate.name = self.name
        aggregate.title = self.title
        aggregate.pay_plan = self.pay_plan
        aggregate.agency = self.agency
        aggregate.duty_station = self.duty_station
        aggregate.appointment_type = self.appointment_type
        aggregate.probationary = self.probationary
        aggregate.appointed_on = self.appointed_on


@dataclass(frozen=True)
class PersonnelActionRecorded(LedgerEvent):
    executive_id: str
    action: str
    basis_appraisal_ids: list[str]
    notice_on: date
    effective_on: date
    authority: str
    hearing_requested_on: date | None

    def apply(self, aggregate: Executive) -> None:
        aggregate.personnel_actions.append(
            MappingProxyType(
                {
                    "action": self.action,
                    "basis_appraisal_ids": tuple(self.basis_appraisal_ids),
                    "notice_on": self.notice_on,
                    "effective_on": self.effective_on,
                    "authority": self.authority,
                    "hearing_requested_on": self.hearing_requested_on,
                }
            )
        )


@dataclass(frozen=True)
class ComplaintRecorded(LedgerEvent):
    executive_id: str
    forum: str
    filed_on: date
    summary: str

    def apply(self, aggregate: Executive) -> None:
        aggregate.complaints.append(
            MappingProxyType(
                {"forum": self.forum, "filed_on": self.filed_on, "summary": self.summary}
            )
        )


#: `Executive` lists that events only append to, of read-only entries (`__deepcopy__`).
_APPEND_ONLY = frozenset({"personnel_actions", "complaints"})


class Executive(LedgerAggregate):
    """A senior executive's stream: registration, then personnel actions and complaints."""

    kind = "executive"

    def __init__(self, executive_id: str) -> None:
        super().__init__(executive_id)
        self.name = ""
        self.title = ""
        self.pay_plan = ""
        self.agency = ""
        self.duty_station = ""
        self.appointment_type = ""
        self.probationary = False
        self.appointed_on = date.min
        #: Each: action, basis_appraisal_ids, notice_on, effective_on, authority,
        #: hearing_requested_on (dates as `date`), oldest first. Read-only mappings of
        #: immutable values: only appended to (see `__deepcopy__`).
        self.personnel_actions: list[Mapping[str, Any]] = []
        #: Each: forum, filed_on, summary (read-only, as `personnel_actions`).
        self.complaints: list[Mapping[str, Any]] = []

    def __deepcopy__(self, memo: dict[int, Any]) -> Executive:
        """A copy whose changes never reach this one (`ledger.aggregate_cache` hands
        commands such copies), made in time independent of the record's length: the lists
        of personnel actions and complaints are new lists of the same entries, which are
        read-only mappings of immutable values; the rest is deep-copied. A complaint a
        minute for years made `copy.deepcopy` the costliest part of a command (5.7 ms at
        2,000 complaints)."""
        clone = Executive.__new__(Executive)
        memo[id(self)] = clone
        for name, value in self.__dict__.items():
            if name in _APPEND_ONLY:
                clone.__dict__[name] = list(value)
            else:
                clone.__dict__[name] = copy.deepcopy(value, memo)
        return clone

    @property
    def executive_id(self) -> str:
        return self.id

    def executive_of(self) -> str | None:
        return self.id

    @property
    def is_career(self) -> bool:
        return self.appointment_type == CAREER

    def facts(self) -> ExecutiveFacts:
        return ExecutiveFacts(
            executive_id=self.id,
            agency=self.agency,
            appointment_type=self.appointment_type,
            probationary=self.probationary,
        )

    @classmethod
    def register(
        cls,
        executive_id: str,
        *,
        name: str,
        title: str,
        pay_plan: str,
        agency: str,
        duty_station: str,
        appointment_type: str,
        probationary: bool,
        appointed_on: date,
        actor: str,
        submission: Submission,
    ) -> Self:
        reg_1_check_choice("appointment_type", appointment_type, APPOINTMENT_TYPES)
        return cls._start(
            ExecutiveRegistered,
            executive_id,
            occurred_on=appointed_on,
            actor=actor,
            submission=submission,
            executive_id=executive_id,
            name=name,
            title=title,
            pay_plan=pay_plan,
            agency=agency,
            duty_station=duty_station,
            appointment_type=appointment_type,
            probationary=probationary,
            appointed_on=appointed_on,
        )

    def record_personnel_action(
        self,
        *,
        action: str,
        basis_appraisal_ids: Sequence[str],
        notice_on: date,
        effective_on: date,
        authority: str,
        hearing_requested_on: date | None,
        actor: str,
        submission: Submission,
    ) -> None:
        """Record a reassignment, transfer, demotion or removal (REM-4, REM-5, REM-7)."""
        reg_1_check_choice("action", action, PERSONNEL_ACTIONS)
        removal = action == REMOVAL
        rem_5_check_notice(notice_on=notice_on, effective_on=effective_on, removal=removal)
        if removal and self.is_career:
            rem_4_check_authority(authority, probationary=self.probationary)
        rem_7_check_hearing(
            hearing_requested_on,
            notice_on=notice_on,
            effective_on=effective_on,
            removal=removal,
            career=self.is_career,
            probationary=self.probationary,
        )
        self._trigger(
            PersonnelActionRecorded,
            occurred_on=notice_on,
            actor=actor,
            submission=submission,
            executive_id=self.id,
            action=action,
            basis_appraisal_ids=list(basis_appraisal_ids),
            notice_on=notice_on,
            effective_on=effective_on,
            authority=authority,
            hearing_requested_on=hearing_requested_on,
        )

    def record_complaint(
        self, *, forum: str, filed_on: date, summary: str, actor: str, submission: Submission
    ) -> None:
        """APP-1: ratings are not appealed; an EEOC or OSC complaint is recorded here."""
        app_1_check_forum(forum)
        self._trigger(
            ComplaintRecorded,
            occurred_on=filed_on,
            actor=actor,
            submission=submission,
            executive_id=self.id,
            forum=forum,
            filed_on=filed_on,
            summary=summary,
        )
