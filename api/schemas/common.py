"""Field types shared by the request bodies and query parameters.

Validation here is deliberately strict, so that no input can reach the domain in a shape it
would trip over (a 5xx): ids are short tokens, text has bounded length and no control
characters or lone surrogates (which the database and UTF-8 cannot store) or bidirectional
embeddings, overrides and isolates (which show stored text as other text), dates are
`YYYY-MM-DD` within 1900-2199 (no date arithmetic can overflow), integers are real integers
within range (no booleans, floats or numeric strings), and unknown fields are refused.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    WithJsonSchema,
)

from api.auth import ID_PATTERN
from ledger.application import WAIVER_ID
from ledger.entry import parse_timestamp
from ledger.policies.common import is_blank

MIN_DAY = date(1900, 1, 1)
MAX_DAY = date(2199, 12, 31)
MAX_POSITION = 2**53 - 1
#: ASCII digits only (`\d` takes any script's digits) and nothing after (`$` lets a final
#: line feed through): either was refused later as "not a valid calendar date".
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
#: C0 and C1 controls (U+0080-U+009F: NEL, CSI, ...) but tab and line breaks; surrogates.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
#: ...and in a single line, no line break of any kind (also U+2028, U+2029).
_LINE_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
#: The explicit directional formatting characters of UAX #9 (embeddings, overrides,
#: isolates and their ends; CVE-2021-42574's): stored text would show as other text
#: ("Pat \u202eelpmaxE" shows as "Pat Example"), and one left open reorders what is shown
#: after the field. The marks LRM, RLM and ALM (U+200E, U+200F, U+061C) reorder nothing.
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")
_BIDI_MESSAGE = (
    "must not contain bidirectional embeddings, overrides or isolates (U+202A-U+202E, "
    "U+2066-U+2069): the text would be shown as other text"
)


class Body(BaseModel):
    """Base of request bodies: unknown fields are an error, strings are never coerced."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _day_string(value: Any) -> Any:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise ValueError("must be a date as YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError("must be a valid calendar date (YYYY-MM-DD)") from None


def _day_range(value: date) -> date:
    if not MIN_DAY <= value <= MAX_DAY:
        raise ValueError(f"must lie between {MIN_DAY} and {MAX_DAY}")
    return value


def _timestamp(value: Any) -> Any:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and len(value) <= 40:
        parsed = parse_timestamp(value)
    else:
        raise ValueError("must be an RFC 3339 timestamp with its offset")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    parsed = parsed.astimezone(UTC)
    if not MIN_DAY <= parsed.date() <= MAX_DAY:
        raise ValueError(f"must lie between {MIN_DAY} and {MAX_DAY}")
    return parsed


def _single_line(value: str) -> str:
    if _LINE_CONTROL.search(value):
        raise ValueError("must not contain control characters or unpaired surrogates")
    if _BIDI.search(value):
        raise ValueError(_BIDI_MESSAGE)
    if value.strip() != value or not value:
        raise ValueError("must not be empty or start or end with white space")
    if is_blank(value):
        raise ValueError("must not be blank")
    return value


def _no_control(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters or unpaired surrogates")
    if _BIDI.search(value):
        raise ValueError(_BIDI_MESSAGE)
    return value


def _multi_line(value: str) -> str:
    _no_control(value)
    if is_blank(value):
        raise ValueError("must not be blank")
    return value


Day = Annotated[date, BeforeValidator(_day_string), AfterValidator(_day_range)]
Timestamp = Annotated[datetime, BeforeValidator(_timestamp)]
#: The longest id (executive, appraisal, board, agency, actor), in bodies and paths alike.
MAX_ID_LENGTH = 128
Id = Annotated[str, Field(pattern=ID_PATTERN, min_length=1, max_length=MAX_ID_LENGTH)]
Agency = Annotated[str, Field(pattern=ID_PATTERN, min_length=1, max_length=MAX_ID_LENGTH)]


def _not_a_waiver_id(value: str) -> str:
    if WAIVER_ID.fullmatch(value):
        raise ValueError(
            "WAIVER-<agency>-FY<nnnn> is the id of that agency's rating cap waiver for that "
            "cycle; choose another"
        )
    return value


#: The id of a new executive, review board or appraisal: not one a waiver is stored under.
NewId = Annotated[Id, AfterValidator(_not_a_waiver_id)]
Code = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Name = Annotated[str, Field(min_length=1, max_length=300), AfterValidator(_single_line)]
Text = Annotated[str, Field(min_length=1, max_length=20_000), AfterValidator(_multi_line)]
#: A text a rule requires in writing (RAT-4's narrative, RAT-5's response, PER-4's reason):
#: blank is the domain's to refuse, with the rule's ID.
RuleText = Annotated[str, Field(max_length=20_000), AfterValidator(_no_control)]
#: An integer; that it is a level, 1-5, is RAT-1's to judge (a refusal then names RAT-1).
#: The range is still shown in the OpenAPI document.
Level = Annotated[StrictInt, WithJsonSchema({"type": "integer", "minimum": 1, "maximum": 5})]


def _digits(value: Any) -> Any:
    """A whole number given as text (a query parameter, a path segment) is written in ASCII
    digits: lax integer parsing also read `1_0` as 10, and `+1` or ` 1` as 1."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError("must be a whole number written in digits 0-9")
    return value


#: For every integer of a query string or path (positions, tree sizes, page sizes).
Digits = BeforeValidator(_digits)
Position = Annotated[int, Field(ge=0, le=MAX_POSITION), Digits]
