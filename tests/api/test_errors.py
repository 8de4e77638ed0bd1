"""RFC 9457 problems: the right status and type for every kind of bad request, field paths for
invalid bodies, the rule ID for rule violations, and never an append for a 4xx."""

from __future__ import annotations

import gzip
import json
import zlib
from datetime import datetime, timedelta
from typing import Any

import pytest

from ledger.application import LedgerApp
from ledger.config import LedgerConfig
from tests.api import story as s
from tests.api.conftest import make_api
from tests.api.story import Api
from tests.ledger_helpers import register

PROBLEM = "application/problem+json"


def _problem(r: Any, status: int, slug: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    body: dict[str, Any] = r.json()
    assert body["type"] == f"urn:ses-ledger:problem:{slug}"
    assert body["status"] == status
    assert isinstance(body["title"], str) and isinstance(body["detail"], str)
    return body


def _raw(api: Api, path: str, content: bytes, content_type: str = "application/json") -> Any:
    headers = {**api.hr, "Content-Type": content_type}
    return api.client.post(path, content=content, headers=headers)


EXECUTIVE_FIELDS: list[tuple[str, object, list[object]]] = [
    ("probationary", "no", ["body", "probationary"]),
    ("probationary", 0, ["body", "probationary"]),
    ("appointed_on", 20190501, ["body", "appointed_on"]),
    ("appointed_on", "2019-5-1", ["body", "appointed_on"]),
    ("appointed_on", "2019-02-30", ["body", "appointed_on"]),
    ("appointed_on", "2019-05-01T00:00:00Z", ["body", "appointed_on"]),
    ("appointed_on", "0001-01-01", ["body", "appointed_on"]),
    ("appointed_on", "9999-12-31", ["body", "appointed_on"]),
    ("appointment_type", "CAREER", ["body", "appointment_type"]),
    ("executive_id", "", ["body", "executive_id"]),
    ("executive_id", "a/b", ["body", "executive_id"]),
    ("executive_id", "has space", ["body", "executive_id"]),
    ("executive_id", "x" * 200, ["body", "executive_id"]),
    ("executive_id", 17, ["body", "executive_id"]),
    ("name", "", ["body", "name"]),
    ("name", "nul\x00inside", ["body", "name"]),
    ("name", "line\nbreak", ["body", "name"]),
    ("name", "next\x85line", ["body", "name"]),  # C1 control NEL
    ("name", "line\u2028separator", ["body", "name"]),
    ("title", "csi\x9b31m", ["body", "title"]),  # C1 control CSI
    ("name", "x" * 301, ["body", "name"]),
    ("agency", "*", ["body", "agency"]),
    ("extra_field", 1, ["body", "extra_field"]),
]


@pytest.mark.parametrize(("field", "value", "loc"), EXECUTIVE_FIELDS, ids=repr)
def test_invalid_fields_are_422_with_their_path(
    shared_api: Api, field: str, value: object, loc: list[object]
) -> None:
    size = shared_api.ledger_size()
    body = s.executive(s.unique("E")) | {field: value}
    problem = _problem(shared_api.post("/v1/executives", body), 422, "invalid-request")
    assert loc in [e["loc"] for e in problem["errors"]]
    assert all(set(e) == {"loc", "msg"} for e in problem["errors"])
    assert shared_api.ledger_size() == size


def test_missing_fields_are_listed(shared_api: Api) -> None:
    problem = _problem(shared_api.post("/v1/executives", {"name": "X"}), 422, "invalid-request")
    missing = {e["loc"][-1] for e in problem["errors"]}
    assert {"executive_id", "agency", "appointed_on", "probationary"} <= missing


#: Integers outside 1-5: RAT-1 refuses them, by its ID. Not integers: the body's shape.
OUT_OF_RANGE: list[object] = [0, 6, -1, 10**30, 2**64]
NOT_INTEGERS: list[object] = [True, 3.0, "3", None, [3]]


@pytest.mark.parametrize("level", OUT_OF_RANGE + NOT_INTEGERS, ids=repr)
def test_levels_are_integers_from_1_to_5(shared_api: Api, level: object) -> None:
    """A level outside 1-5 is RAT-1's refusal and says so (`rule`: it came back as a bare
    `invalid-request`, without the rule's ID); a level that is no integer is a shape error."""
    a = shared_api.appraisal("prb_recommended")
    size = shared_api.ledger_size()
    body = s.final(2024) | {"level": level}
    r = shared_api.post(f"/v1/appraisals/{a.appraisal_id}/final-rating", body)
    if level in OUT_OF_RANGE and not isinstance(level, bool):
        problem = _problem(r, 422, "rule-violation")
        assert problem["rule"] == "RAT-1" and "levels run from 1 to 5" in problem["detail"]
    else:
        problem = _problem(r, 422, "invalid-request")
        assert problem["errors"][0]["loc"] == ["body", "level"]
    assert shared_api.ledger_size() == size


@pytest.mark.parametrize("level", [0, 6], ids=repr)
def test_element_levels_outside_1_to_5_are_refused_by_rat_1(shared_api: Api, level: int) -> None:
    a = shared_api.appraisal("planned")
    shared_api.ok(f"/v1/appraisals/{a.appraisal_id}/progress-reviews", s.review(2024))
    size = shared_api.ledger_size()
    body = s.initial(2024)
    body["element_levels"] = {**body["element_levels"], "results_driven": level}
    r = shared_api.post(f"/v1/appraisals/{a.appraisal_id}/initial-rating", body)
    assert _problem(r, 422, "rule-violation")["rule"] == "RAT-1"
    assert shared_api.ledger_size() == size


@pytest.mark.parametrize("weight", [10**30, -5, 101, 1.5, False], ids=repr)
def test_weights_are_bounded_integers(shared_api: Api, weight: object) -> None:
    body = s.plan(s.unique("A-"), shared_api.new_executive(), 2024)
    body["elements"] = [dict(e) for e in s.BASIC_ELEMENTS]
    body["elements"][0]["weight"] = weight
    problem = _problem(shared_api.post("/v1/appraisals", body), 422, "invalid-request")
    assert problem["errors"][0]["loc"] == ["body", "elements", 0, "weight"]


@pytest.mark.parametrize(
    "content",
    [
        b"{",
        b"[]",
        b'"text"',
        b"null",
        b"17",
        b'{"executive_id": "E1", "name": "\\ud800"}',
        b"[" * 100_000 + b"]" * 100_000,
        b"\xff\xfe",
    ],
    ids=["truncated", "array", "string", "null", "number", "lone-surrogate", "deep", "binary"],
)
def test_unparseable_bodies_are_4xx(shared_api: Api, content: bytes) -> None:
    size = shared_api.ledger_size()
    r = _raw(shared_api, "/v1/executives", content)
    assert 400 <= r.status_code < 500, r.text
    assert r.headers["content-type"] == PROBLEM
    assert shared_api.ledger_size() == size


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "utf-16-le", "utf-32-be"])
def test_a_body_in_another_unicode_encoding_is_refused(shared_api: Api, encoding: str) -> None:
    """JSON between systems is UTF-8 (RFC 8259 8.1) and docs/api.md refuses a body that is
    not UTF-8 text (400). `json.loads` reads UTF-16 and UTF-32 too, so such a body was
    recorded (201) as if it had been sent in UTF-8."""
    size = shared_api.ledger_size()
    body = json.dumps(s.executive(s.unique("E"), name="Zoë Ünal"), ensure_ascii=False)
    r = _raw(shared_api, "/v1/executives", body.encode(encoding))
    problem = _problem(r, 400, "bad-request")  # "ë" and "Ü" in them are no UTF-8 sequences
    assert "not UTF-8" in problem["detail"]
    assert shared_api.ledger_size() == size


def test_a_utf8_body_may_start_with_a_byte_order_mark(shared_api: Api) -> None:
    """RFC 8259 8.1 lets a parser ignore a leading byte order mark; the body is UTF-8."""
    body = json.dumps(s.executive(s.unique("E"), name="Zoë Ünal"), ensure_ascii=False)
    r = _raw(shared_api, "/v1/executives", body.encode("utf-8-sig"))
    assert r.status_code == 201 and r.json()["event"]["data"]["name"] == "Zoë Ünal", r.text


@pytest.mark.parametrize(
    ("encoding", "status", "slug"),
    [
        ("utf-16", 400, "bad-request"),
        ("utf-32", 400, "bad-request"),
        # no byte order mark: valid UTF-8 bytes (ASCII and NULs), but not JSON
        ("utf-16-be", 422, "invalid-request"),
    ],
)
def test_a_body_that_is_not_utf_8_is_refused_and_appends_nothing(
    shared_api: Api, encoding: str, status: int, slug: str
) -> None:
    """docs/api.md: 400 `bad-request` for a body that is not UTF-8 text (RFC 8259 8.1).
    A registration sent as UTF-16 or UTF-32 was read (json.loads guesses the encoding from
    the first bytes) and recorded: 201."""
    size = shared_api.ledger_size()
    body = json.dumps(s.executive(s.unique("E"))).encode(encoding)
    _problem(_raw(shared_api, "/v1/executives", body), status, slug)
    assert shared_api.ledger_size() == size


def test_lone_surrogates_in_text_are_refused(shared_api: Api) -> None:
    body = json.dumps(s.executive(s.unique("E"))).replace("Pat Example", "Pat \\udc80")
    r = _raw(shared_api, "/v1/executives", body.encode())
    assert _problem(r, 422, "invalid-request")["errors"][0]["loc"] == ["body", "name"]


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/jsonx"]
)
def test_a_json_body_not_sent_as_json_says_which_content_type_is_needed(
    shared_api: Api, content_type: str
) -> None:
    """`curl -d` sends `application/x-www-form-urlencoded` unless told otherwise: the body is
    then never read as JSON, and the answer said "body: Input should be a valid dictionary
    or object to extract fields from" of a body that is one. It names the Content-Type to
    send instead (still 422 `invalid-request`: whether this is 415 is undecided), and
    appends nothing (docs/api.md: no 4xx ever appends)."""
    size = shared_api.ledger_size()
    body = json.dumps(s.executive(s.unique("E"))).encode()
    problem = _problem(
        _raw(shared_api, "/v1/executives", body, content_type), 422, "invalid-request"
    )
    assert "Content-Type: application/json" in problem["detail"], problem
    assert repr(content_type) in problem["detail"], problem
    assert problem["errors"][0]["loc"] == ["body"]
    assert shared_api.ledger_size() == size


def test_a_json_body_without_content_type_says_which_is_needed(shared_api: Api) -> None:
    headers = shared_api.hr
    body = json.dumps(s.executive(s.unique("E"))).encode()
    r = shared_api.client.post("/v1/executives", content=body, headers=headers)
    if r.status_code != 201:  # (whether FastAPI reads it as JSON is its choice)
        assert "Content-Type: application/json" in _problem(r, 422, "invalid-request")["detail"]


def _twice(body: dict[str, Any], name: str, first: object) -> bytes:
    """`body` as JSON text with `name` written twice: `first`, then the body's own value."""
    text = json.dumps(body)
    assert text.startswith("{")
    return ("{" + json.dumps(name) + ": " + json.dumps(first) + ", " + text[1:]).encode()


def test_a_member_named_twice_is_422_and_names_it(shared_api: Api) -> None:
    """I-JSON (RFC 7493 2.3): a body whose meaning depends on the parser (first or last value
    wins) is refused, not recorded as whichever value ours happened to keep."""
    size = shared_api.ledger_size()
    body = s.executive(s.unique("E"))
    r = _raw(shared_api, "/v1/executives", _twice(body, "agency", "DOT"))
    problem = _problem(r, 422, "invalid-request")
    assert '"agency" appears more than once' in problem["detail"]
    assert shared_api.ledger_size() == size
    assert _raw(shared_api, "/v1/executives", json.dumps(body).encode()).status_code == 201


def test_a_member_named_twice_in_a_nested_object_is_422(shared_api: Api) -> None:
    executive_id = shared_api.new_executive()
    body = s.plan(s.unique("A-"), executive_id, 2024)
    element = json.dumps(body["elements"][0])
    text = json.dumps(body).replace(element, '{"weight": 90, ' + element[1:], 1)
    assert text != json.dumps(body)
    size = shared_api.ledger_size()
    problem = _problem(_raw(shared_api, "/v1/appraisals", text.encode()), 422, "invalid-request")
    assert '"weight" appears more than once' in problem["detail"]
    assert shared_api.ledger_size() == size


def test_a_member_named_twice_meets_the_token_check_first(shared_api: Api) -> None:
    body = _twice(s.executive(s.unique("E")), "agency", "DOT")
    r = shared_api.client.post(
        "/v1/executives", content=body, headers={"Content-Type": "application/json"}
    )
    _problem(r, 401, "unauthorized")
    auditor = {**shared_api.auditor, "Content-Type": "application/json"}
    _problem(
        shared_api.client.post("/v1/executives", content=body, headers=auditor), 403, "forbidden"
    )


#: Bodies that are not usable JSON for reasons other than syntax: FastAPI answered each with
#: a 400 "There was an error parsing the body" before the token was looked at.
UNREADABLE_BODIES = {
    "nested-too-deep": (b"[" * 5_000 + b"]" * 5_000, "nested too deeply"),
    "deep-inside-a-field": (
        b'{"executive_id": "E1", "name": ' + b"[" * 5_000 + b"]" * 5_000 + b"}",
        "nested too deeply",
    ),
    "number-of-5000-digits": (b'{"probationary": 1' + b"0" * 5_000 + b"}", "too many digits"),
}


@pytest.mark.parametrize("name", list(UNREADABLE_BODIES))
def test_an_unreadable_body_is_422_and_says_why(shared_api: Api, name: str) -> None:
    """docs/api.md: a body that is not JSON is 422 `invalid-request`; only text that is not
    UTF-8 is 400."""
    content, why = UNREADABLE_BODIES[name]
    size = shared_api.ledger_size()
    problem = _problem(_raw(shared_api, "/v1/executives", content), 422, "invalid-request")
    assert why in problem["detail"]
    assert "set_int_max_str_digits" not in problem["detail"]  # no hint at the server's insides
    assert shared_api.ledger_size() == size


@pytest.mark.parametrize("name", [*UNREADABLE_BODIES, "not-utf-8"])
def test_an_unreadable_body_meets_the_token_check_first(shared_api: Api, name: str) -> None:
    """No token: 401; an auditor's: 403, whatever the body (a caller learns nothing of how
    the server parses before it has shown a token that may write)."""
    content = UNREADABLE_BODIES[name][0] if name != "not-utf-8" else b'{"name": "\xff\xfe"}'
    plain = {"Content-Type": "application/json"}
    for path in ("/v1/executives", "/v1/appraisals/A-1/progress-reviews"):
        r = shared_api.client.post(path, content=content, headers=plain)
        _problem(r, 401, "unauthorized")
        r = shared_api.client.post(path, content=content, headers={**shared_api.auditor, **plain})
        _problem(r, 403, "forbidden")


def test_a_body_that_is_not_utf_8_is_400(shared_api: Api) -> None:
    problem = _problem(_raw(shared_api, "/v1/executives", b'{"name": "\xff"}'), 400, "bad-request")
    assert problem["detail"] == "the request body is not UTF-8 text"


def test_a_syntax_error_says_what_is_wrong(shared_api: Api) -> None:
    """Where the parser stopped is a character offset in the sentence, not a `loc` step:
    `["body", 8]` read as the ninth element of an array (and `["body", 0]`, "body.0", of a
    member named twice, judged of the whole body)."""
    problem = _problem(
        _raw(shared_api, "/v1/executives", b'{"a": 1 "b": 2}'), 422, "invalid-request"
    )
    assert problem["detail"] == "body: JSON decode error at character 8: Expecting ',' delimiter"
    assert problem["errors"] == [
        {"loc": ["body"], "msg": "JSON decode error at character 8: Expecting ',' delimiter"}
    ]
    body = _twice(s.executive(s.unique("E")), "agency", "DOT")
    problem = _problem(_raw(shared_api, "/v1/executives", body), 422, "invalid-request")
    assert problem["errors"][0]["loc"] == ["body"], problem
    assert problem["detail"].startswith("body: JSON decode error: "), problem
    assert '"agency" appears more than once' in problem["detail"], problem


def test_an_oversized_body_is_413(shared_api: Api) -> None:
    body = s.executive(s.unique("E")) | {"name": "x" * 2_000_000}
    _problem(shared_api.post("/v1/executives", body), 413, "payload-too-large")


def test_an_oversized_chunked_body_is_413_too(shared_api: Api) -> None:
    """No Content-Length to refuse it by: counted as it arrives (it was a 400 "error parsing
    the body")."""
    size = shared_api.ledger_size()
    chunks = (b"x" * 65_536 for _ in range(40))  # 2.6 MB, sent chunked
    r = shared_api.client.post(
        "/v1/executives",
        content=chunks,
        headers={**shared_api.hr, "Content-Type": "application/json"},
    )
    assert "content-length" not in {k.lower() for k in r.request.headers}
    detail = _problem(r, 413, "payload-too-large")["detail"]
    assert detail.startswith("request bodies are limited to ")
    assert shared_api.ledger_size() == size


def test_unknown_body_references_are_422_unknown_reference(shared_api: Api) -> None:
    r = shared_api.post("/v1/appraisals", s.plan("A-x", "E-missing", 2024))
    problem = _problem(r, 422, "unknown-reference")
    assert problem["errors"][0]["loc"] == ["body", "executive_id"]

    a = shared_api.appraisal("response_closed")
    body = s.prb(2024, "PRB-missing", ["initial_rating"])
    r = shared_api.post(f"/v1/appraisals/{a.appraisal_id}/prb-recommendation", body)
    assert _problem(r, 422, "unknown-reference")["errors"][0]["loc"] == ["body", "board_id"]

    body = s.personnel_action(basis=["A-missing"])
    r = shared_api.post(f"/v1/executives/{a.executive_id}/personnel-actions", body)
    assert "does not refer to anything recorded" in _problem(r, 422, "unknown-reference")["detail"]
    other = shared_api.appraisal("planned")  # another executive's appraisal is no basis
    body = s.personnel_action(basis=[other.appraisal_id])
    r = shared_api.post(f"/v1/executives/{a.executive_id}/personnel-actions", body)
    # recorded, but not this executive's: the sentence says so, not that it does not exist
    assert _problem(r, 422, "unknown-reference")["detail"].endswith(
        f"{other.appraisal_id!r} is an appraisal of {other.executive_id}, not of {a.executive_id}"
    )


@pytest.mark.parametrize(
    "path",
    [
        "/v1/appraisals/A-missing/progress-reviews",
        "/v1/executives/E-missing/complaints",
        "/v1/executives/E-missing/personnel-actions",
    ],
)
def test_unknown_path_ids_on_writes_are_404(shared_api: Api, path: str) -> None:
    body = s.review(2024) if "progress" in path else s.complaint()
    if "personnel" in path:
        body = s.personnel_action()
    _problem(shared_api.post(path, body), 404, "not-found")


@pytest.mark.parametrize(
    "path",
    [
        "/v1/executives/E-missing",
        "/v1/executives/E-missing/ratings",
        "/v1/executives/E-missing/removal-history",
        "/v1/executives/E-missing/evidence-bundle",
        "/v1/appraisals/A-missing",
        "/v1/appraisals/A-missing/events",
        "/v1/executives/bad%00id",
        "/v1/executives/%F0%9F%98%80",
        "/v1/ledger/receipts/999999",
        "/v1/no-such-thing",
    ],
)
def test_unknown_path_ids_on_reads_are_404(shared_api: Api, path: str) -> None:
    _problem(shared_api.get(path), 404, "not-found")


def test_a_stream_of_another_kind_is_not_found(shared_api: Api) -> None:
    a = shared_api.appraisal("planned")
    _problem(shared_api.get(f"/v1/executives/{a.appraisal_id}"), 404, "not-found")
    _problem(shared_api.get(f"/v1/appraisals/{a.executive_id}"), 404, "not-found")


def test_existing_ids_are_409(shared_api: Api) -> None:
    admin = shared_api.as_("admin")
    executive_id = shared_api.new_executive()
    size = shared_api.ledger_size()
    _problem(shared_api.post("/v1/executives", s.executive(executive_id)), 409, "already-exists")
    board_id = shared_api.new_board()
    _problem(shared_api.post("/v1/review-boards", s.board(board_id), admin), 409, "already-exists")
    shared_api.ok("/v1/rating-cap-waivers", s.waiver("DOE", "FY2099"), admin)
    waiver = s.waiver("DOE", "FY2099")
    _problem(shared_api.post("/v1/rating-cap-waivers", waiver, admin), 409, "already-exists")
    a = shared_api.appraisal("planned")
    again = s.plan(a.appraisal_id, a.executive_id, 2024)
    _problem(shared_api.post("/v1/appraisals", again), 409, "already-exists")
    assert shared_api.ledger_size() == size + 4  # a board, a waiver, an executive, a plan


def test_no_executive_board_or_appraisal_takes_the_id_of_a_waiver(shared_api: Api) -> None:
    """A waiver is stored under `WAIVER-<agency>-<cycle>`, in the one namespace of stream ids
    that clients name executives, boards and appraisals in. An executive registered (by any
    agency's hr_app) as `WAIVER-DOJ-FY2031` stood in the place of DOJ's FY2031 waiver: its
    grant was then refused for good, "rating_cap_waiver 'WAIVER-DOJ-FY2031' already exists",
    though none did. Such ids are now refused (422), and the waiver can be granted."""
    admin, taken = shared_api.as_("admin", agency="*"), "WAIVER-DOJ-FY2031"
    size = shared_api.ledger_size()
    executive = s.executive(taken)
    problem = _problem(shared_api.post("/v1/executives", executive), 422, "invalid-request")
    assert problem["errors"][0]["loc"] == ["body", "executive_id"]
    problem = _problem(
        shared_api.post("/v1/review-boards", s.board("WAIVER-DOE-X-FY2031"), admin),
        422,
        "invalid-request",
    )
    assert problem["errors"][0]["loc"] == ["body", "board_id"]
    plan = s.plan("WAIVER-DOE-FY2032", shared_api.new_executive(), 2024)
    problem = _problem(shared_api.post("/v1/appraisals", plan), 422, "invalid-request")
    assert problem["errors"][0]["loc"] == ["body", "appraisal_id"]
    assert shared_api.ledger_size() == size + 1  # the plan's executive
    waiver = shared_api.ok("/v1/rating-cap-waivers", s.waiver("DOJ", "FY2031"), admin)
    assert waiver["id"] == taken
    for near in ("WAIVER-DOJ-FY203", "WAIVER-FY2031", "WAIVERS-DOJ-FY2031", "E-WAIVER-DOJ-FY2031"):
        shared_api.ok("/v1/executives", s.executive(near))  # only the waiver form is refused


@pytest.mark.parametrize(
    ("stage", "path", "body", "rule"),
    [
        ("planned", "final-rating", s.final(2024), "RAT-8"),
        ("planned", "executive-response", s.response(2024), "SEQ-1"),
        ("final", "progress-reviews", s.review(2024), "SEQ-1"),
        ("initially_rated", "initial-rating", s.initial(2024), "SEQ-1"),
        ("planned", "initial-rating", s.initial(2024) | {"rated_on": "2023-11-01"}, "PER-2"),
        (
            "initially_rated",
            "prb-recommendation",
            s.prb(2024, "PRB-X", ["initial_rating"]) | {"recommended_on": "2024-10-16"},
            "RAT-7",
        ),
    ],
)
def test_rule_violations_are_422_with_the_rule(
    shared_api: Api, stage: str, path: str, body: dict[str, Any], rule: str
) -> None:
    a = shared_api.appraisal(stage)
    if "board_id" in body:
        body = body | {"board_id": shared_api.new_board()}
    size = shared_api.ledger_size()
    r = shared_api.post(f"/v1/appraisals/{a.appraisal_id}/{path}", body)
    assert _problem(r, 422, "rule-violation")["rule"] == rule
    assert shared_api.ledger_size() == size


def test_plan_weight_rules(shared_api: Api) -> None:
    body = s.plan(s.unique("A-"), shared_api.new_executive(), 2024)
    body["elements"] = [dict(e) for e in s.BASIC_ELEMENTS]
    body["elements"][0]["weight"] = 20  # sum 105
    r = shared_api.post("/v1/appraisals", body)
    assert _problem(r, 422, "rule-violation")["rule"] == "WT-1"


def test_other_methods_are_405_problems(shared_api: Api) -> None:
    r = shared_api.client.delete("/v1/executives", headers=shared_api.hr)
    _problem(r, 405, "method-not-allowed")


@pytest.mark.parametrize(
    "query",
    [
        {"as_of_position": -1},
        {"as_of_position": 2**64},
        {"as_of_position": "x"},
        {"known_at": "yesterday"},
        {"known_at": "0001-01-01T00:00:00Z"},
        {"as_of_position": 1, "known_at": "2024-01-01T00:00:00Z"},
        # not RFC 3339: a moment in a zone the caller did not state is not guessed at
        {"known_at": "2030-01-01"},
        {"known_at": "2030-01-01T00:00:00"},
        {"known_at": "2030-01-01 00:00:00Z"},
    ],
    ids=repr,
)
def test_bad_replay_parameters_are_422(shared_api: Api, query: dict[str, Any]) -> None:
    executive_id = shared_api.new_executive()
    r = shared_api.get(f"/v1/executives/{executive_id}", **query)
    _problem(r, 422, "invalid-request")


@pytest.mark.parametrize("known_at", ["2030-01-01T00:00:00Z", "2030-01-01t05:30:00.5+05:30"])
def test_rfc_3339_timestamps_with_an_offset_are_taken(shared_api: Api, known_at: str) -> None:
    executive_id = shared_api.new_executive()
    r = shared_api.get(f"/v1/executives/{executive_id}", known_at=known_at)
    assert r.status_code == 200 and r.json()["executive_id"] == executive_id


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/v1/ledger/events", {"limit": 0}),
        ("/v1/ledger/events", {"limit": 100_000}),
        ("/v1/ledger/events", {"after": -3}),
        ("/v1/ledger/proofs/inclusion", {"position": "a"}),
        ("/v1/ledger/proofs/consistency", {"first": -1}),
        ("/v1/ledger/proofs/inclusion", {"position": 1, "tree_size": -1}),
        ("/v1/reports/rating-distribution", {"cycle": "2024"}),
        ("/v1/reports/rating-distribution", {"cycle": "FY2024"}),  # `*` token: name the agency
        ("/v1/reports/below-fully-successful", {"as_of": "24-01-01"}),
        ("/v1/reports/compliance", {"agency": "a b"}),
    ],
    ids=repr,
)
def test_bad_query_parameters_are_422(shared_api: Api, path: str, query: dict[str, Any]) -> None:
    _problem(shared_api.get(path, **query), 422, "invalid-request")


def test_seq_1_rating_dated_before_the_plan_was_communicated(shared_api: Api) -> None:
    """SEQ-1 through HTTP: a rating dated before its plan names SEQ-1 and says so truly."""
    a = shared_api.appraisal(communicated_on="2023-11-01")
    size = shared_api.ledger_size()
    body = s.initial(2024) | {"rated_on": "2023-10-15"}
    r = shared_api.post(f"/v1/appraisals/{a.appraisal_id}/initial-rating", body)
    problem = _problem(r, 422, "rule-violation")
    assert problem["rule"] == "SEQ-1"
    assert "before the plan was communicated on 2023-11-01" in problem["detail"]
    assert shared_api.ledger_size() == size


def test_detail_dates_out_of_order_are_seq_1_not_the_flag_per_5(shared_api: Api) -> None:
    """rules.md: PER-5 is a *flag* (the write is accepted); a refusal never names it. A detail
    appraised before it began is a step out of order: SEQ-1."""
    a = shared_api.appraisal()
    size = shared_api.ledger_size()
    body = s.detail(2024) | {"appraised_on": "2023-11-01"}
    r = shared_api.post(f"/v1/appraisals/{a.appraisal_id}/detail-appraisals", body)
    assert _problem(r, 422, "rule-violation")["rule"] == "SEQ-1"
    assert shared_api.ledger_size() == size


def test_known_at_with_nanoseconds_is_read_to_the_microsecond(shared_api: Api) -> None:
    """api-contract.md "Reads": `known_at=<timestamp>` is RFC 3339, whose fraction of a second
    has any number of digits (Go's RFC3339Nano and Java's Instant write nine). The ledger keeps
    microseconds, so the moment is cut to the microsecond: an event recorded at t is known at
    t plus a few nanoseconds, and not a nanosecond before t."""
    executive_id = shared_api.new_executive()
    recorded_at = shared_api.get(f"/v1/executives/{executive_id}/evidence-bundle").json()[
        "entries"
    ][0]["recorded_at"]
    assert len(recorded_at) == len("2026-01-01T00:00:00.000000Z")
    same = recorded_at[:-1] + "999Z"
    path = f"/v1/executives/{executive_id}"
    assert shared_api.get(path, known_at=same).status_code == 200
    moment = datetime.fromisoformat(recorded_at[:-1]) - timedelta(microseconds=1)
    before = moment.isoformat(timespec="microseconds") + "999+00:00"
    assert shared_api.get(path, known_at=before).status_code == 404


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/executives", s.executive("E-BLANK-NAME", name="\u200b"), "name"),
        ("/v1/executives", s.executive("E-BLANK-TITLE", title="\ufeff\u2060"), "title"),
        (
            "/v1/executives/{executive_id}/complaints",
            s.complaint() | {"summary": "\u200b"},
            "summary",
        ),
        (
            "/v1/appraisals/{appraisal_id}/initial-rating",
            s.initial(2024) | {"narrative": " \u200d\n"},
            "narrative",
        ),
    ],
    ids=["name", "title", "summary", "narrative"],
)
def test_text_of_invisible_characters_only_is_blank(
    shared_api: Api, path: str, body: dict[str, Any], field: str
) -> None:
    """Whitespace-only text is refused (RAT-4: the rating is *in writing*), and so is text of
    zero-width spaces, joiners or byte order marks alone, which `str.strip` does not remove:
    such a narrative or complaint was recorded as written while nothing could be read."""
    appraisal = shared_api.appraisal("planned")
    shared_api.ok(f"/v1/appraisals/{appraisal.appraisal_id}/progress-reviews", s.review(2024))
    ids = {"executive_id": appraisal.executive_id, "appraisal_id": appraisal.appraisal_id}
    size = shared_api.ledger_size()
    r = shared_api.post(path.format(**ids), body)
    if field == "narrative":  # a text a rule requires in writing: refused by its ID
        assert _problem(r, 422, "rule-violation")["rule"] == "RAT-4"
    else:
        problem = _problem(r, 422, "invalid-request")
        assert ["body", field] in [e["loc"] for e in problem["errors"]]
    assert shared_api.ledger_size() == size
    visible = body | {field: f"Written \u200b{body[field].strip()}text"}
    shared_api.ok(path.format(**ids), visible)


@pytest.mark.parametrize("text", ["escape \x9b2J sequence", "next\x85line", "nul\x00inside"])
def test_control_characters_in_multi_line_text_are_refused(shared_api: Api, text: str) -> None:
    """Text holds no control characters but tab and line breaks: C1 controls (U+0080-U+009F)
    were let through, so a complaint summary could carry a terminal's CSI into the record."""
    executive_id = shared_api.new_executive()
    size = shared_api.ledger_size()
    body = s.complaint() | {"summary": text}
    r = shared_api.post(f"/v1/executives/{executive_id}/complaints", body)
    assert ["body", "summary"] in [e["loc"] for e in _problem(r, 422, "invalid-request")["errors"]]
    assert shared_api.ledger_size() == size
    shared_api.ok(
        f"/v1/executives/{executive_id}/complaints", s.complaint() | {"summary": "a\tb\r\nc"}
    )


@pytest.mark.parametrize(
    ("stage", "step", "body", "rule", "plan"),
    [
        (
            "initially_rated",
            "executive-response",
            s.response(2024) | {"text": "\u200b "},
            "RAT-5",
            {},
        ),
        ("initially_rated", "executive-response", s.response(2024) | {"text": ""}, "RAT-5", {}),
        (
            "planned",
            "period-extension",
            s.extension(2024) | {"reason": "\ufeff"},
            "PER-4",
            {"period_end": "2024-06-30"},
        ),
    ],
    ids=["response of invisible characters", "empty response", "blank extension reason"],
)
def test_a_text_a_rule_requires_in_writing_is_refused_by_its_rule(
    shared_api: Api, stage: str, step: str, body: dict[str, Any], rule: str, plan: Any
) -> None:
    """RAT-5 (a response is in writing) and PER-4 (an extension records its reason): a blank
    text came back as a bare `invalid-request`, without the rule's ID; zero-width characters
    alone count as blank, as for every text."""
    a = shared_api.appraisal(stage, **plan)
    size = shared_api.ledger_size()
    r = shared_api.post(f"/v1/appraisals/{a.appraisal_id}/{step}", body)
    assert _problem(r, 422, "rule-violation")["rule"] == rule
    assert shared_api.ledger_size() == size


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/executives/"),
        ("POST", "/v1/appraisals/{appraisal_id}/progress-reviews/"),
        ("GET", "/v1/executives/{executive_id}/"),
        ("GET", "/v1/ledger/keys/"),
    ],
)
def test_a_path_with_a_trailing_slash_is_an_unknown_route_not_a_redirect(
    shared_api: Api, method: str, path: str
) -> None:
    """docs/api.md: an unknown route is 404 `not-found`, a problem like every error. A path
    with a slash too many was answered 307 with no body, its `Location` built from the
    request's Host header and the scheme the server saw (`http` behind a TLS proxy): a
    client that follows redirects (curl -L, requests) sent the write there again, body and
    all, and so wrote (found by fuzzing the paths of the writes)."""
    a = shared_api.appraisal("planned")
    target = path.format(executive_id=a.executive_id, appraisal_id=a.appraisal_id)
    size = shared_api.ledger_size()
    body = s.executive(s.unique("E")) if "executives" in path else s.review(2024)
    r = shared_api.client.request(
        method,
        target,
        json=body if method == "POST" else None,
        headers=shared_api.hr if method == "POST" else shared_api.auditor,
        follow_redirects=False,
    )
    assert "location" not in r.headers
    _problem(r, 404, "not-found")
    assert shared_api.ledger_size() == size


#: The explicit directional formatting characters of UAX #9 (embeddings, overrides,
#: isolates and their ends), the code points of CVE-2021-42574 ("Trojan Source").
BIDI_CONTROLS = [
    "\u202a",
    "\u202b",
    "\u202c",
    "\u202d",
    "\u202e",
    "\u2066",
    "\u2067",
    "\u2068",
    "\u2069",
]


@pytest.mark.parametrize("control", BIDI_CONTROLS, ids=lambda c: f"U+{ord(c):04X}")
@pytest.mark.parametrize("field", ["name", "summary", "narrative"])
def test_bidirectional_formatting_characters_in_text_are_refused(
    shared_api: Api, control: str, field: str
) -> None:
    """A name sent as "Pat \\u202eelpmaxE" was recorded (201), and every report, bundle
    and screen then shows "Pat Example" for a record that says otherwise (an override
    reorders what follows it; one left open reorders the text shown after the field too).
    Text holds no bidirectional embedding, override or isolate; the marks LRM, RLM and ALM,
    which reorder nothing, are kept (found fuzzing bodies with bidi controls)."""
    a = shared_api.appraisal("planned")
    shared_api.ok(f"/v1/appraisals/{a.appraisal_id}/progress-reviews", s.review(2024))
    text = f"Pat {control}elpmaxE"
    path, body = {
        "name": ("/v1/executives", s.executive(s.unique("E"), name=text)),
        "summary": (
            f"/v1/executives/{a.executive_id}/complaints",
            s.complaint() | {"summary": text},
        ),
        "narrative": (
            f"/v1/appraisals/{a.appraisal_id}/initial-rating",
            s.initial(2024) | {"narrative": text},
        ),
    }[field]
    size = shared_api.ledger_size()
    problem = _problem(shared_api.post(path, body), 422, "invalid-request")
    assert ["body", field] in [e["loc"] for e in problem["errors"]], problem
    assert "bidirectional" in problem["detail"], problem
    assert shared_api.ledger_size() == size
    marked = body | {field: "\u0645\u062d\u0645\u062f\u200f (Mohammed)\u200e \u061cx"}
    assert shared_api.post(path, marked).status_code == 201


@pytest.mark.parametrize(
    "name", ["\\ud800", "x\\udc80", "\\udbff", "executive_id\\ud800"], ids=repr
)
@pytest.mark.parametrize("nested", [False, True], ids=["top", "nested"])
def test_a_member_name_that_is_not_unicode_text_is_422_and_says_so(
    shared_api: Api, name: str, nested: bool
) -> None:
    """A member *name* with an unpaired surrogate (escaped: the body is UTF-8) was answered
    at `["body"]` with "Input should be a valid string, unable to parse raw data as a
    unicode string", of a body that is an object: the caller was not told which name, or
    that a name was the trouble (found fuzzing bodies with escaped lone surrogates). Such a
    name is not Unicode text (RFC 8259 8.2, I-JSON): refused as the body's JSON, naming it."""
    size = shared_api.ledger_size()
    text = json.dumps(s.executive(s.unique("E")))
    if nested:
        body = s.plan(s.unique("A-"), shared_api.new_executive(), 2024)
        text = json.dumps(body).replace('"weight"', f'"{name}": 1, "weight"', 1)
        size += 1
    else:
        text = "{" + f'"{name}": 1, ' + text[1:]
    path = "/v1/appraisals" if nested else "/v1/executives"
    problem = _problem(_raw(shared_api, path, text.encode()), 422, "invalid-request")
    assert "unpaired surrogate" in problem["detail"], problem
    assert json.dumps(json.loads(f'"{name}"')) in problem["detail"], problem
    assert shared_api.ledger_size() == size


@pytest.mark.parametrize("coding", ["gzip", "deflate", "identity, gzip"])
def test_a_coded_body_is_415_naming_the_coding(shared_api: Api, coding: str) -> None:
    """A gzipped JSON body was read as its coded bytes: 400 "the request body is not UTF-8
    text", a character-set fault it did not have. RFC 9110 15.5.16: 415, and
    `Accept-Encoding` says which codings would do (docs/api.md, Errors). Nothing appended;
    the token is checked first, as for any body."""
    body = json.dumps(s.executive(s.unique("E"))).encode()
    coded = gzip.compress(body) if "gzip" in coding else zlib.compress(body)
    size = shared_api.ledger_size()
    headers = {**shared_api.hr, "Content-Type": "application/json", "Content-Encoding": coding}
    r = shared_api.client.post("/v1/executives", content=coded, headers=headers)
    problem = _problem(r, 415, "unsupported-media-type")
    assert f"Content-Encoding: {coding.split(', ')[-1]}" in problem["detail"], problem
    assert r.headers["accept-encoding"] == "identity"
    assert shared_api.ledger_size() == size
    plain = {"Content-Type": "application/json", "Content-Encoding": coding}
    _problem(
        shared_api.client.post("/v1/executives", content=coded, headers=plain), 401, "unauthorized"
    )
    identity = {**headers, "Content-Encoding": "identity"}
    assert (
        shared_api.client.post("/v1/executives", content=body, headers=identity).status_code == 201
    )


def test_a_waiver_id_held_by_an_older_ledgers_executive_is_named_as_such(
    sqlite_config: LedgerConfig,
) -> None:
    """Builds before 2026-12-01 (a5611c8) let an executive be registered as
    `WAIVER-DOE-FY2031`; a ledger written by one keeps it. DOE's FY2031 waiver is stored
    under that id, so it cannot be recorded there: the refusal said "rating_cap_waiver
    'WAIVER-DOE-FY2031' already exists", though no waiver did. It now names what holds the
    id. The same for any create meeting an id of another kind (one namespace of ids)."""
    older = LedgerApp(sqlite_config)
    register(older, "WAIVER-DOE-FY2031")  # as the API of those builds stored it
    older.close()
    apis = make_api(sqlite_config)
    api = next(apis)
    admin = api.as_("admin", agency="*")
    problem = _problem(
        api.post("/v1/rating-cap-waivers", s.waiver("DOE", "FY2031"), admin), 409, "already-exists"
    )
    assert "already exists" not in problem["detail"], problem
    assert "taken by the executive 'WAIVER-DOE-FY2031'" in problem["detail"], problem
    assert "made before such ids were refused" in problem["detail"], problem
    api.ok("/v1/executives", s.executive("E-NS-1"))
    problem = _problem(
        api.post("/v1/appraisals", s.plan("E-NS-1", "E-NS-1", 2024)), 409, "already-exists"
    )
    assert problem["detail"].startswith(
        "appraisal 'E-NS-1' cannot be created: the id is taken by the executive 'E-NS-1'"
    ), problem
    problem = _problem(api.post("/v1/executives", s.executive("E-NS-1")), 409, "already-exists")
    assert problem["detail"] == "executive 'E-NS-1' already exists", problem
    api.ok("/v1/rating-cap-waivers", s.waiver("DOE", "FY2032"), admin)
    problem = _problem(
        api.post("/v1/rating-cap-waivers", s.waiver("DOE", "FY2032"), admin), 409, "already-exists"
    )
    assert problem["detail"] == "rating_cap_waiver 'WAIVER-DOE-FY2032' already exists", problem
    apis.close()


@pytest.mark.parametrize(
    "path",
    ["/v1/executives/{id}", "/v1/executives/{id}/ratings", "/v1/appraisals/{id}"],
)
def test_an_id_in_a_path_is_held_to_the_same_length_as_in_a_body(
    shared_api: Api, path: str
) -> None:
    """docs/api.md: ids are 1-128 characters. A path id of 129 to 256 characters was read
    (and answered 404), and one longer refused as "at most 256 characters"."""
    assert shared_api.get(path.format(id="x" * 128)).status_code == 404
    problem = _problem(shared_api.get(path.format(id="x" * 129)), 422, "invalid-request")
    assert "128" in problem["errors"][0]["msg"], problem


@pytest.mark.parametrize("cycle", ["FY0000", "FY0001", "FY1899", "FY2201", "FY9999"])
def test_a_cycle_no_period_of_the_ledger_can_fall_in_is_a_422_naming_it(
    shared_api: Api, cycle: str
) -> None:
    """Dates lie in 1900-2199 (docs/api.md), so a period ends in FY1900 (Jan 1 1900) to FY2200
    (Dec 31 2199). `FY0000` (Oct 1 of year -1 to Sep 30 of year 0, which no calendar date
    holds) was answered 200 with an empty distribution, and a rating cap waiver for it was
    recorded for good: now the report and the waiver are a 422 naming `cycle`, nothing
    appended."""
    r = shared_api.get("/v1/reports/rating-distribution", agency="DOE", cycle=cycle)
    problem = _problem(r, 422, "invalid-request")
    assert [e["loc"] for e in problem["errors"]] == [["query", "cycle"]]
    assert "FY1900" in problem["detail"] and "FY2200" in problem["detail"]
    size = shared_api.ledger_size()
    body = s.waiver(s.unique("AG"), cycle)
    r = shared_api.post("/v1/rating-cap-waivers", body, shared_api.as_("admin", agency="*"))
    problem = _problem(r, 422, "invalid-request")
    assert [e["loc"] for e in problem["errors"]] == [["body", "cycle"]]
    assert shared_api.ledger_size() == size


@pytest.mark.parametrize("cycle", ["FY1900", "FY2200"])
def test_the_first_and_last_cycles_of_the_ledger_dates_are_taken(
    shared_api: Api, cycle: str
) -> None:
    r = shared_api.get("/v1/reports/rating-distribution", agency="DOE", cycle=cycle)
    assert r.status_code == 200 and r.json()["cycle"] == cycle
    admin = shared_api.as_("admin", agency="*")
    shared_api.ok("/v1/rating-cap-waivers", s.waiver(s.unique("AG"), cycle), admin)


@pytest.mark.parametrize(
    ("known_at", "moment"),
    [
        ("2016-12-31T23:59:60Z", "2016-12-31T23:59:59.999999Z"),
        ("2016-12-31T23:59:60.5Z", "2016-12-31T23:59:59.999999Z"),
        ("2015-06-30T19:59:60-04:00", "2015-06-30T23:59:59.999999Z"),
        ("2030-01-31T23:59:60Z", "2030-01-31T23:59:59.999999Z"),
    ],
)
def test_a_leap_second_known_at_is_the_last_moment_before_the_next_day(
    known_at: str, moment: str
) -> None:
    """RFC 3339 5.6-5.7: a second of 60 is a leap second, at 23:59:60 UTC at a month's end.
    It was refused ("second must be in 0..59", Python's datetime has no such second). No
    `recorded_at` lies in a leap second, so "recorded at or before it" is "recorded before
    the next day": it reads as the last microsecond of its day."""
    from ledger.entry import parse_timestamp
    from projections.queries import normalise_known_at

    assert normalise_known_at(known_at) == moment
    assert parse_timestamp(known_at).tzinfo is not None


@pytest.mark.parametrize(
    "known_at", ["2016-12-30T23:59:60Z", "2016-12-31T12:00:60Z", "2016-12-31T23:59:60+01:00"]
)
def test_a_second_of_60_that_is_not_a_leap_second_is_a_422_saying_so(
    shared_api: Api, known_at: str
) -> None:
    executive_id = shared_api.new_executive()
    r = shared_api.get(f"/v1/executives/{executive_id}", known_at=known_at)
    problem = _problem(r, 422, "invalid-request")
    assert [e["loc"] for e in problem["errors"]] == [["query", "known_at"]]
    assert "leap second" in problem["detail"] and "23:59:60" in problem["detail"]


def test_a_leap_second_known_at_reads_the_ledger_to_the_end_of_its_day(
    shared_api: Api,
) -> None:
    executive_id = shared_api.new_executive()
    path = f"/v1/executives/{executive_id}"
    entry = shared_api.get(f"{path}/evidence-bundle").json()["entries"][0]
    day = datetime.fromisoformat(entry["recorded_at"][:10])
    assert shared_api.get(path, known_at=f"{day:%Y-%m-%d}T00:00:00Z").status_code == 404
    r = shared_api.get(path, known_at="2016-12-31T23:59:60Z")
    assert r.status_code == 404 and "does not exist" in r.json()["detail"]
    last_second = datetime(2100, 12, 31, 23, 59, 59)
    assert day < last_second  # the ledger's clock stands before 2100
    r = shared_api.get(path, known_at="2100-12-31T23:59:60Z")
    assert r.status_code == 200 and r.json()["executive_id"] == executive_id
