"""The contract's "Who may do what" table, request by request and role by role.

Each write case builds a fresh record at the right stage, then sends the request with one
role's token: an allowed role gets 201, any other 403 and the ledger does not grow. Acting
officials only count as themselves; every role is held to its agency unless its agency is
`*`; `auditor` never writes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest

from tests.api import story as s
from tests.api.story import Api

ROLES = [
    "hr_app",
    "rating_official",
    "executive",
    "hlr_official",
    "prb_member",
    "appointing_authority",
    "auditor",
    "admin",
]
#: The subject each acting-official role uses: the official the request names.
OFFICIAL = {
    "rating_official": "R1",
    "hlr_official": "H1",
    "prb_member": "M1",
    "appointing_authority": "AA1",
}


@dataclass(frozen=True)
class Request:
    path: str
    body: dict[str, object]
    executive_id: str = ""


Prepare = Callable[[Api], Request]
#: Unique cycles for waivers (a new one each time), among those a period can end in (FY1900-FY2200).
_cycles = itertools.count(1900)


def _stage(
    stage: str, path: str, body: Callable[[s.Appraisal], dict[str, object]], **plan: object
) -> Prepare:
    def prepare(api: Api) -> Request:
        a = api.appraisal(stage, **plan)  # type: ignore[arg-type]
        return Request(f"/v1/appraisals/{a.appraisal_id}/{path}", body(a), a.executive_id)

    return prepare


def _executive_step(path: str, body: Callable[[], dict[str, object]]) -> Prepare:
    def prepare(api: Api) -> Request:
        executive_id = api.new_executive()
        return Request(f"/v1/executives/{executive_id}/{path}", body(), executive_id)

    return prepare


def _plan(api: Api) -> Request:
    executive_id = api.new_executive()
    return Request("/v1/appraisals", s.plan(s.unique("A-"), executive_id, 2024), executive_id)


def _prb(api: Api) -> Request:
    a = api.appraisal("response_closed")
    body = s.prb(2024, api.new_board(), ["initial_rating"])
    return Request(f"/v1/appraisals/{a.appraisal_id}/prb-recommendation", body, a.executive_id)


#: request -> (roles allowed by the contract, how to prepare a request that would succeed)
WRITES: dict[str, tuple[set[str], Prepare]] = {
    "register executive": (
        {"admin", "hr_app"},
        lambda api: Request("/v1/executives", s.executive(s.unique("E"))),
    ),
    "register review board": (
        {"admin"},
        lambda api: Request("/v1/review-boards", s.board(s.unique("PRB-"))),
    ),
    "grant rating cap waiver": (
        {"admin"},
        lambda api: Request("/v1/rating-cap-waivers", s.waiver("DOE", f"FY{next(_cycles)}")),
    ),
    "plan": ({"hr_app", "rating_official"}, _plan),
    "progress review": (
        {"hr_app", "rating_official"},
        _stage("planned", "progress-reviews", lambda a: s.review(2024)),
    ),
    "detail appraisal": (
        {"hr_app"},
        _stage("planned", "detail-appraisals", lambda a: s.detail(2024)),
    ),
    "period extension": (
        {"hr_app", "rating_official"},
        _stage("planned", "period-extension", lambda a: s.extension(2024), period_end="2024-06-30"),
    ),
    "initial rating": (
        {"hr_app", "rating_official"},
        _stage("planned", "initial-rating", lambda a: s.initial(2024)),
    ),
    "executive response": (
        {"hr_app", "executive"},
        _stage("initially_rated", "executive-response", lambda a: s.response(2024)),
    ),
    "response waiver": (
        {"hr_app", "executive"},
        _stage("initially_rated", "response-waiver", lambda a: s.response_waiver(2024)),
    ),
    "higher-level review request": (
        {"hr_app", "executive"},
        _stage("initially_rated", "higher-level-review-request", lambda a: s.hlr_request(2024)),
    ),
    "higher-level review": (
        {"hr_app", "hlr_official"},
        _stage("hlr_requested", "higher-level-review", lambda a: s.hlr(2024)),
    ),
    "PRB recommendation": ({"hr_app", "prb_member"}, _prb),
    "final rating": (
        {"hr_app", "appointing_authority"},
        _stage("prb_recommended", "final-rating", lambda a: s.final(2024)),
    ),
    "personnel action": (
        {"hr_app", "appointing_authority"},
        _executive_step("personnel-actions", s.personnel_action),
    ),
    "complaint": ({"hr_app", "executive"}, _executive_step("complaints", s.complaint)),
}


def _subject(role: str, request: Request) -> str:
    if role == "executive":
        return request.executive_id or "E-nobody"
    return OFFICIAL.get(role, f"{role}-1")


def _assert_refused(api: Api, request: Request, headers: dict[str, str], status: int) -> None:
    size = api.ledger_size()
    r = api.post(request.path, request.body, headers)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert api.ledger_size() == size


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", list(WRITES))
def test_write_matrix(shared_api: Api, name: str, role: str) -> None:
    allowed, prepare = WRITES[name]
    request = prepare(shared_api)
    headers = shared_api.as_(role, subject=_subject(role, request))
    if role in allowed:
        result = shared_api.ok(request.path, request.body, headers)
        assert result["event"]["submitted_by"] == _subject(role, request)
    else:
        _assert_refused(shared_api, request, headers, 403)


#: Acting officials must be the official the request names.
IMPERSONATIONS = [
    ("plan", "rating_official", "R2"),
    ("progress review", "rating_official", "R2"),
    ("period extension", "rating_official", "R2"),
    ("initial rating", "rating_official", "R2"),
    ("executive response", "executive", "E-someone-else"),
    ("response waiver", "executive", "E-someone-else"),
    ("higher-level review request", "executive", "E-someone-else"),
    ("complaint", "executive", "E-someone-else"),
    ("higher-level review", "hlr_official", "H2"),
    ("PRB recommendation", "prb_member", "M5"),  # on the board, but not present
    ("final rating", "appointing_authority", "AA2"),
]


@pytest.mark.parametrize(("name", "role", "subject"), IMPERSONATIONS)
def test_acting_official_only_as_itself(
    shared_api: Api, name: str, role: str, subject: str
) -> None:
    request = WRITES[name][1](shared_api)
    _assert_refused(shared_api, request, shared_api.as_(role, subject=subject), 403)


@pytest.mark.parametrize("name", list(WRITES))
def test_writes_stay_in_the_token_agency(shared_api: Api, name: str) -> None:
    allowed, prepare = WRITES[name]
    request = prepare(shared_api)
    role = "hr_app" if "hr_app" in allowed else "admin"
    elsewhere = shared_api.as_(role, subject=_subject(role, request), agency="DOT")
    _assert_refused(shared_api, request, elsewhere, 403)
    everywhere = shared_api.as_(role, subject=_subject(role, request), agency="*")
    shared_api.ok(request.path, request.body, everywhere)


@pytest.mark.parametrize("name", list(WRITES))
def test_auditor_never_writes_even_with_another_role(shared_api: Api, name: str) -> None:
    request = WRITES[name][1](shared_api)
    headers = shared_api.as_("auditor", "admin", "hr_app", subject="aud-1", agency="*")
    _assert_refused(shared_api, request, headers, 403)


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        ({}, {}),
        ([], {}),
        ({"unknown": 1}, {}),
        (None, {"Idempotency-Key": "a key\nwith a line break", "If-Match": "x"}),
    ],
    ids=["empty", "array", "unknown-field", "bad-headers"],
)
@pytest.mark.parametrize("name", list(WRITES))
def test_an_auditor_is_refused_before_the_body_is_judged(
    shared_api: Api, name: str, body: object, headers: dict[str, str]
) -> None:
    """docs/api.md, "Who may do what": an auditor's 403 comes "before any complaint about
    the body" ("`auditor` never writes"). A body of the wrong shape was a 422 that listed
    the fields the auditor had got wrong, on every write route."""
    request = WRITES[name][1](shared_api)
    auditor = shared_api.as_("auditor", subject="aud-1", agency="*", **headers)
    if body is not None:
        request = replace(request, body=body)  # type: ignore[arg-type]
    _assert_refused(shared_api, request, auditor, 403)


@pytest.mark.parametrize("name", list(WRITES))
def test_writes_need_a_token(shared_api: Api, name: str) -> None:
    request = WRITES[name][1](shared_api)
    _assert_refused(shared_api, request, {}, 401)


# -- reads ---------------------------------------------------------------------------------

OFFICIALS = {"rating_official", "hlr_official", "prb_member", "appointing_authority"}
READERS = {"auditor", "admin", "hr_app"} | OFFICIALS
#: read -> (roles allowed on any record of their agency, whether the executive reads own)
READS: dict[str, tuple[set[str], bool]] = {
    "/v1/executives/{e}": (READERS, True),
    "/v1/executives/{e}/ratings": (READERS, True),
    "/v1/executives/{e}/removal-history": (READERS, True),
    "/v1/appraisals/{a}": (READERS, True),
    "/v1/appraisals/{a}/events": (READERS, True),
    "/v1/reports/below-fully-successful": (READERS, False),
    "/v1/reports/rating-distribution?cycle=FY2024": (READERS, False),
    "/v1/reports/compliance": (READERS, False),
    "/v1/ledger/events": ({"auditor", "admin"}, False),
    "/v1/ledger/verify": ({"auditor", "admin"}, False),
    "/v1/reports/audit-trail?executive_id={e}": ({"auditor", "admin"}, False),
    "/v1/executives/{e}/evidence-bundle": ({"auditor", "admin", "hr_app"}, True),
    "/v1/ledger/receipts/{p}": ({"auditor", "admin", "hr_app"}, True),
}
PUBLIC = [
    "/healthz",
    "/v1/ledger/keys",
    "/v1/ledger/checkpoint",
    "/v1/ledger/proofs/inclusion?position={p}",
    "/v1/ledger/proofs/consistency?first=1",
    "/openapi.json",
    "/docs",
]


@pytest.fixture(scope="module")
def record(shared_api: Api) -> dict[str, str]:
    """An executive with a finally rated appraisal, and the position of its final rating."""
    a = shared_api.appraisal("final", level=2)
    events = shared_api.get(f"/v1/appraisals/{a.appraisal_id}/events").json()["events"]
    return {"e": a.executive_id, "a": a.appraisal_id, "p": str(events[-1]["position"])}


def _get(api: Api, path: str, record: dict[str, str], headers: dict[str, str]) -> int:
    r = api.client.get(path.format(**record), headers=headers)
    if r.status_code >= 400:
        assert r.headers["content-type"] == "application/problem+json"
    status: int = r.status_code
    return status


@pytest.mark.parametrize("role", [*ROLES, "executive (own)"])
@pytest.mark.parametrize("path", list(READS))
def test_read_matrix(shared_api: Api, record: dict[str, str], path: str, role: str) -> None:
    allowed, own = READS[path]
    if role == "executive (own)":
        headers, expected = shared_api.as_("executive", subject=record["e"]), own
    else:
        subject = "E-someone-else" if role == "executive" else OFFICIAL.get(role, f"{role}-1")
        headers, expected = shared_api.as_(role, subject=subject), role in allowed
    assert _get(shared_api, path, record, headers) == (200 if expected else 403)


@pytest.mark.parametrize("path", [p for p in READS if "{" in p])
def test_reads_stay_in_the_token_agency(shared_api: Api, record: dict[str, str], path: str) -> None:
    other = shared_api.as_("auditor", subject="aud-dot", agency="DOT")
    assert _get(shared_api, path, record, other) == 403
    everywhere = shared_api.as_("auditor", subject="aud-all", agency="*")
    assert _get(shared_api, path, record, everywhere) == 200


@pytest.mark.parametrize("path", list(READS))
def test_reads_need_a_token(shared_api: Api, record: dict[str, str], path: str) -> None:
    assert _get(shared_api, path, record, {}) == 401


@pytest.mark.parametrize("path", PUBLIC)
def test_public_reads_need_no_token(shared_api: Api, record: dict[str, str], path: str) -> None:
    assert _get(shared_api, path, record, {}) == 200
    # ...and an unusable token does not spoil them.
    assert _get(shared_api, path, record, {"Authorization": "Bearer nonsense"}) == 200


def test_reports_cover_the_token_agency_only(shared_api: Api, record: dict[str, str]) -> None:
    dot = shared_api.as_("hr_app", subject="hr-dot", agency="DOT")
    r = shared_api.client.get("/v1/reports/compliance", params={"agency": "DOE"}, headers=dot)
    assert r.status_code == 403
    report = shared_api.client.get(
        "/v1/reports/below-fully-successful", params={"as_of": "2025-01-01"}, headers=dot
    ).json()
    assert record["e"] not in {e["executive_id"] for e in report["executives"]}
    everyone = shared_api.client.get(
        "/v1/reports/below-fully-successful",
        params={"as_of": "2025-01-01"},
        headers=shared_api.auditor,
    ).json()
    assert record["e"] in {e["executive_id"] for e in everyone["executives"]}


def test_ledger_events_of_one_agency(shared_api: Api, record: dict[str, str]) -> None:
    """An agency's admin pages through its own agency's entries only."""
    shared_api.new_executive(agency="DOT")
    dot_admin = shared_api.as_("admin", subject="admin-dot", agency="DOT")
    seen, after = [], 0
    while after is not None:
        page = shared_api.client.get(
            "/v1/ledger/events", params={"after": after, "limit": 2}, headers=dot_admin
        ).json()
        seen += page["events"]
        after = page["next_after"]
    assert seen and all(e["data"].get("agency") == "DOT" for e in seen)


def test_no_one_acts_as_an_official_on_their_own_appraisal(shared_api: Api) -> None:
    """Not `hr_app` naming the executive as their own rating official, nor the executive's
    own token holding an official's role too: 403, nothing appended."""
    api = shared_api
    executive_id = api.new_executive()
    size = api.ledger_size()
    own_plan = s.plan(s.unique("A-"), executive_id, 2024, rating_official_id=executive_id)
    r = api.post("/v1/appraisals", own_plan)
    assert r.status_code == 403, r.text
    assert "rating_official_id names" in r.json()["detail"]
    assert api.ledger_size() == size

    a = api.appraisal("planned", executive_id=executive_id)
    both = api.as_("executive", "rating_official", subject=executive_id)
    path = f"/v1/appraisals/{a.appraisal_id}"
    size = api.ledger_size()
    for step, body in (
        ("initial-rating", s.initial(2024, rater=executive_id)),
        ("progress-reviews", s.review(2024) | {"reviewer_id": executive_id}),
    ):
        for headers in (both, api.hr):
            r = api.post(f"{path}/{step}", body, headers)
            assert r.status_code == 403 and "own appraisal" in r.json()["detail"], r.text
    assert api.ledger_size() == size
    # the executive's own steps stay theirs, and the plan's official still rates
    api.ok(f"{path}/initial-rating", s.initial(2024))
    assert api.post(f"{path}/response-waiver", s.response_waiver(2024), both).status_code == 201


def test_a_refused_basis_does_not_name_another_agency_executive(shared_api: Api) -> None:
    """Contract "Who may do what": a token reads its own agency's records only. Naming
    another agency's appraisal as a basis said whose appraisal it was ("is an appraisal of
    E7"), so an agency's `hr_app` could map any other agency's appraisal ids to executives."""
    api = shared_api
    dot = Api(api.client, api.key, agency="DOT")
    theirs = dot.appraisal("planned")
    executive_id = api.new_executive()
    size = api.ledger_size()
    body = s.personnel_action(basis=[theirs.appraisal_id])
    r = api.post(f"/v1/executives/{executive_id}/personnel-actions", body)
    assert r.status_code == 422, r.text
    assert r.json()["type"] == "urn:ses-ledger:problem:unknown-reference"
    assert theirs.executive_id not in r.text and "DOT" not in r.text
    assert api.ledger_size() == size
    # ...nor that it is another agency's appraisal at all: to this token it is no appraisal
    # it knows, as another agency's review board is ("is an appraisal of an executive of
    # another agency" told it which ids were other agencies' appraisals)
    nothing = s.personnel_action(basis=[s.unique("A-none-")])
    unknown = api.post(f"/v1/executives/{executive_id}/personnel-actions", nothing)
    assert unknown.status_code == 422, unknown.text
    assert r.json()["detail"] == unknown.json()["detail"].replace(
        nothing["basis_appraisal_ids"][0], theirs.appraisal_id
    )
    assert api.ledger_size() == size
    # a token of every agency is told what the appraisal is
    everywhere = api.as_("hr_app", subject="hr-all", agency="*")
    told = api.post(f"/v1/executives/{executive_id}/personnel-actions", body, everywhere)
    assert told.status_code == 422 and "is an appraisal of" in told.json()["detail"], told.text


@pytest.mark.parametrize(
    ("role", "subject"), [("hr_app", "hr-app-1"), ("prb_member", "M1")], ids=["hr_app", "member"]
)
def test_a_refused_board_does_not_name_another_agency(
    shared_api: Api, role: str, subject: str
) -> None:
    """As for a basis appraisal: naming another agency's review board said which agency it
    serves (422 PRB-1 "PRB-7 serves DOT; the executive belongs to DOE"), to a DOE `hr_app`,
    or to a DOE `prb_member` who also sits on that board. Now it is no board the token
    knows (422 unknown-reference); a `*` token still hears the rule."""
    api = shared_api
    theirs = api.new_board(agency="DOT")
    a = api.appraisal("response_closed")
    path = f"/v1/appraisals/{a.appraisal_id}/prb-recommendation"
    body = s.prb(2024, theirs, ["initial_rating"])
    size = api.ledger_size()
    r = api.post(path, body, api.as_(role, subject=subject))
    assert r.status_code == 422, r.text
    assert r.json()["type"] == "urn:ses-ledger:problem:unknown-reference"
    assert "DOT" not in r.text and "serves" not in r.text
    everywhere = api.as_(role, subject=subject, agency="*")
    r = api.post(path, body, everywhere)
    assert r.status_code == 422 and r.json()["rule"] == "PRB-1", r.text
    assert api.ledger_size() == size
    api.ok(path, s.prb(2024, api.new_board(), ["initial_rating"]), api.as_(role, subject=subject))


def test_another_agencys_board_is_unknown_to_a_prb_member_not_on_it(shared_api: Api) -> None:
    """docs/api.md, unknown-reference: a review board of an agency the token does not cover
    is, to that token, no board it knows. A DOE `prb_member` listing itself present on a
    DOT board it does not sit on was refused 403 for its role (the board's member list was
    read), where a board id that names nothing is 422 unknown-reference: the difference
    told it which ids are other agencies' boards. Both are now 422 unknown-reference, and
    nothing is appended; on its own agency's board it is still refused for its role."""
    api = shared_api
    theirs = api.new_board(agency="DOT")
    a = api.appraisal("response_closed")
    path = f"/v1/appraisals/{a.appraisal_id}/prb-recommendation"
    outsider = api.as_("prb_member", subject="M9")
    answers = []
    for board in (theirs, s.unique("PRB-none-")):
        body = s.prb(2024, board, ["initial_rating"], present=["M9", "M1", "M2"])
        size = api.ledger_size()
        r = api.post(path, body, outsider)
        assert api.ledger_size() == size
        answers.append((r.status_code, r.json()["type"]))
    assert answers[0] == answers[1] == (422, "urn:ses-ledger:problem:unknown-reference")
    ours = s.prb(2024, api.new_board(), ["initial_rating"], present=["M9", "M1", "M2"])
    _assert_refused(api, Request(path, ours), outsider, 403)


# -- the whole read matrix: role x agency scope x whose record ---------------------------

SCOPES = {"same": "DOE", "other": "DOT", "every": "*"}


def _read_expected(path: str, role: str, scope: str, own: bool) -> int:
    """The contract's answer: 200 when the role may read it (an executive: own records only,
    no reports), 403 otherwise; record reads need the record's agency or `*`, while the
    ledger-wide reads (events, verify, reports) are scoped inside a 200."""
    allowed, executive_reads_own = READS[path]
    permitted = role in allowed or (role == "executive" and own and executive_reads_own)
    if not permitted:
        return 403
    record_read = "{" in path
    if record_read and scope == "other":
        return 403
    if "rating-distribution" in path and scope == "every":
        return 422  # a `*` token names the agency of the distribution
    return 200


#: (role, whether the token's subject is the record's executive): only an executive's
#: token has records of its own.
CALLERS = [(role, False) for role in ROLES] + [("executive", True)]


@pytest.mark.parametrize("scope", list(SCOPES))
@pytest.mark.parametrize(("role", "own"), CALLERS, ids=lambda v: str(v))
@pytest.mark.parametrize("path", list(READS))
def test_read_matrix_by_scope(
    shared_api: Api, record: dict[str, str], path: str, role: str, own: bool, scope: str
) -> None:
    """api-contract.md "Who may do what", every read x role x agency (same, other, `*`) x
    the executive's own record or another's."""
    if role == "executive":
        subject = record["e"] if own else "E-someone-else"
    else:
        subject = OFFICIAL.get(role, f"{role}-1")
    headers = shared_api.as_(role, subject=subject, agency=SCOPES[scope])
    expected = _read_expected(path, role, scope, own)
    assert _get(shared_api, path, record, headers) == expected, (path, role, scope, own)


@pytest.mark.parametrize("replay", ["as_of_position=1", "known_at=2000-01-01T00:00:00Z"])
@pytest.mark.parametrize("path", [p for p in READS if p.startswith(("/v1/executives", "/v1/appr"))])
def test_a_replay_reads_nothing_the_token_may_not(
    shared_api: Api, record: dict[str, str], path: str, replay: str
) -> None:
    """as_of_position / known_at change what a read sees, never who may read it: another
    executive, or another agency's token, is refused as without them."""
    url = path + ("&" if "?" in path else "?") + replay
    someone = shared_api.as_("executive", subject="E-someone-else")
    elsewhere = shared_api.as_("auditor", subject="aud-dot", agency="DOT")
    assert _get(shared_api, url, record, someone) == 403
    assert _get(shared_api, url, record, elsewhere) == 403


@pytest.mark.parametrize(
    ("name", "role"),
    [(name, role) for name, (allowed, _) in WRITES.items() for role in sorted(allowed)],
)
def test_every_allowed_role_writes_in_its_agency_only(
    shared_api: Api, name: str, role: str
) -> None:
    """Each role a write allows, acting officials and the executive included: another
    agency's token is refused (403, nothing appended), a `*` token is not."""
    prepare = WRITES[name][1]
    request = prepare(shared_api)
    subject = _subject(role, request)
    _assert_refused(shared_api, request, shared_api.as_(role, subject=subject, agency="DOT"), 403)
    shared_api.ok(request.path, request.body, shared_api.as_(role, subject=subject, agency="*"))


@pytest.mark.parametrize("path", [p for p in READS if "{" in p])
def test_a_refusal_does_not_say_which_agency_holds_the_record(
    shared_api: Api, record: dict[str, str], path: str
) -> None:
    """Contract "Who may do what": another agency's records are out of a token's scope, and
    so is which agency holds them. The 403 said "not for 'DOE'" of any id it was given."""
    other = shared_api.as_("auditor", subject="aud-dot", agency="DOT")
    r = shared_api.client.get(path.format(**record), headers=other)
    assert r.status_code == 403
    assert "DOE" not in r.text


def test_a_prb_member_not_on_the_board_is_refused_as_a_role(shared_api: Api) -> None:
    """Contract "Who may do what": a PRB recommendation is `hr_app`'s or a `prb_member`'s
    present on the board. A member of no board who listed themselves present was not
    refused for their role (403) but judged as a recommendation (422 PRB-1)."""
    request = _prb(shared_api)
    body = dict(request.body) | {"members_present": ["M1", "M2", "M9"]}
    outsider = shared_api.as_("prb_member", subject="M9")
    _assert_refused(shared_api, Request(request.path, body), outsider, 403)
    # listed by hr_app, the outsider is still the rule's matter
    r = shared_api.post(request.path, body)
    assert r.status_code == 422 and r.json()["rule"] == "PRB-1", r.text
