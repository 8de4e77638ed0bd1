"""A Performance Review Board: its members and Federal Register publication (PRB-1, PRB-4)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Self

from ledger.domain.base import LedgerAggregate, LedgerEvent, Submission
from ledger.policies.common import prb_1_check_board


@dataclass(frozen=True)
class BoardFacts:
    """What a PRB recommendation needs to know about the board: member id -> career."""

    board_id: str
    agency: str
    federal_register_published_on: date
    members: Mapping[str, bool]


@dataclass(frozen=True)
class ReviewBoardRegistered(LedgerEvent):
    creates = True

    board_id: str
    agency: str
    federal_register_published_on: date
    #: Each: member_id, name, career (bool).
    members: list[dict[str, Any]]

    def new_aggregate(self) -> ReviewBoard:
        return ReviewBoard(self.originator_id)

    def apply(self, aggregate: ReviewBoard) -> None:
        aggregate.agency = self.agency
        aggregate.federal_register_published_on = self.federal_register_published_on
        aggregate.members = [dict(m) for m in self.members]


class ReviewBoard(LedgerAggregate):
    """A PRB as appointed and published; it never changes after registration."""

    kind = "review_board"

    def __init__(self, board_id: str) -> None:
        super().__init__(board_id)
        self.agency = ""
        self.federal_register_published_on = date.min
        self.members: list[dict[str, Any]] = []

    @property
    def board_id(self) -> str:
        return self.id

    def facts(self) -> BoardFacts:
        return BoardFacts(
            board_id=self.id,
            agency=self.agency,
            federal_register_published_on=self.federal_register_published_on,
            members={m["member_id"]: bool(m["career"]) for m in self.members},
        )

    @classmethod
    def register(
        cls,
        board_id: str,
        *,
        agency: str,
        federal_register_published_on: date,
        members: Sequence[Mapping[str, Any]],
        actor: str,
        submission: Submission,
    ) -> Self:
        """PRB-1: at least 3 members, each listed once."""
        prb_1_check_board([m["member_id"] for m in members])
        return cls._start(
            ReviewBoardRegistered,
            board_id,
            occurred_on=federal_register_published_on,
            actor=actor,
            submission=submission,
            board_id=board_id,
            agency=agency,
            federal_register_published_on=federal_register_published_on,
            members=[
                {"member_id": m["member_id"], "name": m["name"], "career": m["career"]}
                for m in members
            ],
        )
