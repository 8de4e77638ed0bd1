"""The ledger's aggregates and their events (pure domain: no I/O, no clock)."""

from ledger.domain.appraisal import (
    STAGES,
    Appraisal,
    DetailAppraised,
    ExecutiveResponded,
    FinalRatingAssigned,
    HigherLevelReviewRecommended,
    HigherLevelReviewRequested,
    InitialRatingIssued,
    PeriodExtended,
    PlanSet,
    PRBRecommended,
    ProgressReviewed,
    ResponseWaived,
)
from ledger.domain.base import EVENT_TYPES, LedgerAggregate, LedgerEvent, Submission
from ledger.domain.executive import (
    ComplaintRecorded,
    Executive,
    ExecutiveFacts,
    ExecutiveRegistered,
    PersonnelActionRecorded,
)
from ledger.domain.rating_cap_waiver import RatingCapWaiver, RatingCapWaiverGranted
from ledger.domain.review_board import BoardFacts, ReviewBoard, ReviewBoardRegistered

__all__ = [
    "EVENT_TYPES",
    "STAGES",
    "Appraisal",
    "BoardFacts",
    "ComplaintRecorded",
    "DetailAppraised",
    "Executive",
    "ExecutiveFacts",
    "ExecutiveRegistered",
    "ExecutiveResponded",
    "FinalRatingAssigned",
    "HigherLevelReviewRecommended",
    "HigherLevelReviewRequested",
    "InitialRatingIssued",
    "LedgerAggregate",
    "LedgerEvent",
    "PRBRecommended",
    "PeriodExtended",
    "PersonnelActionRecorded",
    "PlanSet",
    "ProgressReviewed",
    "RatingCapWaiver",
    "RatingCapWaiverGranted",
    "ResponseWaived",
    "ReviewBoard",
    "ReviewBoardRegistered",
    "Submission",
]
