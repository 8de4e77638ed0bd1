"""Edges of the contract's Authentication section and "Who may do what" table that the
request matrices in `test_access.py` and `test_auth.py` did not pin down: each test here
was written against a hand mutant of `api/auth.py`, `api/access.py` or a router that those
matrices let pass (QA mutation pass of 2026-12-01), and fails with it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import jwt
import pytest
from fastapi.testclient import TestClient

from api.auth import ALL_AGENCIES, Principal, Role, TokenError, decode_token
from api.errors import Forbidden
from api.main import create_app
from api.settings import ApiSettings
from ledger.application import LedgerApp
from ledger.config import LedgerConfig
from tests.api import story as s
from tests.api.story import Api


def _principal(*roles: Role, agency: str = "DOE", subject: str = "s-1") -> Principal:
    return Principal(subject=subject, roles=frozenset(roles), agency=agency)


def _at_whole_second_start() -> int:
    """The current whole second, early enough in it that a check made now does not tick
    over into the next one."""
    while time.time() % 1 > 0.6:
        time.sleep(0.05)
    return int(time.time())


def test_a_token_is_refused_two_seconds_after_exp_not_three() -> None:
    """api-contract.md, Authentication: "Tokens expire at `exp` with at most 2 seconds of
    leeway". A token whose `exp` lies 2 to 3 seconds back is refused; a 3-second leeway
    took it (the older test's token, 3 s late, is refused with either)."""
    key = b"k" * 32
    now = _at_whole_second_start()
    claims = {"sub": "aud-1", "roles": ["auditor"], "agency": "*", "iat": now - 60}
    late = jwt.encode(claims | {"exp": now - 2}, key, algorithm="HS256")
    with pytest.raises(TokenError, match="expired"):
        decode_token(late, key)
    within = jwt.encode(claims | {"exp": now - 1}, key, algorithm="HS256")
    assert decode_token(within, key).subject == "aud-1"


def test_a_late_token_is_401_on_the_api(api: Api) -> None:
    """The same edge through the server's verifier (`TokenVerifier`), on a read for
    `auditor`: 401 once `exp` is 2 seconds back."""
    now = _at_whole_second_start()
    claims = {"sub": "aud-1", "roles": ["auditor"], "agency": "*", "iat": now - 60}
    late = jwt.encode(claims | {"exp": now - 2}, api.key, algorithm="HS256")
    r = api.client.get("/v1/ledger/verify", headers={"Authorization": f"Bearer {late}"})
    assert r.status_code == 401, r.text


@pytest.mark.parametrize("role", list(Role))
def test_a_one_agency_token_covers_no_record_of_unknown_agency(role: Role) -> None:
    """api-contract.md, "Who may do what": every request acts on the token's "own agency
    unless the token's agency is `*`". A record whose agency cannot be told (an entry the
    directory cannot place: `receipts`) is not the token's own agency: only `*` covers it."""
    from api import access

    one = _principal(role)
    assert not one.covers(None)
    assert _principal(role, agency=ALL_AGENCIES).covers(None)
    with pytest.raises(Forbidden):
        access.require_read(one, None, roles=[role], owner="s-1")


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_only_hs256_tokens_are_taken(algorithm: str) -> None:
    """api/auth.py issues HS256 tokens only; a token of another algorithm, even under the
    same secret, is not one the server issued (`algorithms` is pinned against algorithm
    confusion): refused, as the contract's 401 "no/bad token"."""
    key = b"k" * 64  # long enough for HS512: the refusal is for the algorithm alone
    now = int(time.time())
    claims = {"sub": "aud-1", "roles": ["auditor"], "agency": "*", "iat": now, "exp": now + 60}
    with pytest.raises(TokenError):
        decode_token(jwt.encode(claims, key, algorithm=algorithm), key)


@pytest.mark.parametrize("scheme", ["Basic", "Token"])
def test_a_token_under_another_scheme_is_401_for_a_body_that_is_not_json(
    api: Api, scheme: str
) -> None:
    """api-contract.md, Authentication: `Authorization: Bearer <token>`; Errors: 401 no/bad
    token. A body that is not JSON is judged by `api.errors` before the dependencies, and a
    valid `hr_app` token sent as `Basic` there must still be no token (401), as it is for a
    body that parses; taken as a bearer token it got as far as the JSON error (422)."""
    token = api.token("hr_app", subject="hr-app-1")
    r = api.client.post(
        "/v1/executives",
        content=b"{bad",
        headers={"Authorization": f"{scheme} {token}", "Content-Type": "application/json"},
    )
    assert r.status_code == 401, r.text


#: (request, a role the contract does not let make it, the official the request names:
#: `{e}` for the appraisal's executive). The token's subject is that official.
WRONG_ROLE_RIGHT_NAME = [
    ("plan", "hlr_official", "R1"),
    ("progress review", "appointing_authority", "R1"),
    ("period extension", "prb_member", "R1"),
    ("initial rating", "executive", "R1"),
    ("executive response", "rating_official", "{e}"),
    ("response waiver", "hlr_official", "{e}"),
    ("higher-level review request", "appointing_authority", "{e}"),
    ("complaint", "prb_member", "{e}"),
    ("higher-level review", "rating_official", "H1"),
    ("PRB recommendation", "rating_official", "M1"),
    ("final rating", "hlr_official", "AA1"),
]


@pytest.mark.parametrize(("name", "role", "named"), WRONG_ROLE_RIGHT_NAME)
def test_an_acting_official_must_hold_that_officials_role(
    shared_api: Api, name: str, role: str, named: str
) -> None:
    """api-contract.md, "Who may do what": "`rating_official` as itself", "`hlr_official` as
    itself", "`executive` on own records"...: the subject counts only with the role the
    request names. A token of another role whose subject happens to be the named official
    (an `hlr_official` token for "R1" rating as R1) is refused 403, nothing appended."""
    from tests.api.test_access import WRITES, _assert_refused

    request = WRITES[name][1](shared_api)
    subject = request.executive_id if named == "{e}" else named
    _assert_refused(shared_api, request, shared_api.as_(role, subject=subject), 403)


@pytest.mark.parametrize("path", ["/v1/executives/{e}/evidence-bundle", "/v1/ledger/receipts/{p}"])
@pytest.mark.parametrize(
    "role", ["rating_official", "hlr_official", "prb_member", "appointing_authority"]
)
def test_only_the_executive_role_reads_its_own_bundle(
    shared_api: Api, path: str, role: str
) -> None:
    """api-contract.md, "Who may do what": evidence bundle, receipts: "`auditor`, `admin`,
    `hr_app`; `executive` own". An official's token whose subject is the executive's id is
    not the executive's token: 403 (the officials read records and reports, not bundles);
    the `executive` token of that id reads them."""
    a = shared_api.appraisal("planned")
    events = shared_api.get(f"/v1/appraisals/{a.appraisal_id}/events").json()["events"]
    url = path.format(e=a.executive_id, p=events[-1]["position"])
    official = shared_api.as_(role, subject=a.executive_id)
    assert shared_api.client.get(url, headers=official).status_code == 403
    own = shared_api.as_("executive", subject=a.executive_id)
    assert shared_api.client.get(url, headers=own).status_code == 200


#: request -> the `actor` the contract's Writes table names when `hr_app` submits it
#: (`{e}`: the appraisal's executive; `{board}`: the PRB's id; `{subject}`: the token's).
HR_SUBMITS_FOR = {
    "plan": "R1",
    "progress review": "R1",
    "initial rating": "R1",
    "period extension": "{subject}",
    "detail appraisal": "{subject}",
    "executive response": "{e}",
    "response waiver": "{e}",
    "higher-level review request": "{e}",
    "higher-level review": "H1",
    "PRB recommendation": "{board}",
    "final rating": "AA1",
    "personnel action": "{subject}",
    "complaint": "{subject}",
}


@pytest.mark.parametrize("name", list(HR_SUBMITS_FOR))
def test_hr_app_submits_on_the_officials_behalf(shared_api: Api, name: str) -> None:
    """api-contract.md, "Who may do what": `hr_app` may submit any of these on the acting
    official's behalf, and the Writes table's actor column says whose act it records: the
    official the body names (or the executive), not the submitting token, which is
    `submitted_by`; a complaint filed by `hr_app` is the token subject's."""
    from tests.api.test_access import WRITES

    request = WRITES[name][1](shared_api)
    entry = shared_api.ok(request.path, request.body)["event"]
    expected = HR_SUBMITS_FOR[name].format(
        e=request.executive_id, board=request.body.get("board_id"), subject="hr-app-1"
    )
    assert (entry["actor"], entry["submitted_by"]) == (expected, "hr-app-1")


@pytest.mark.parametrize(
    ("stage", "step", "body"),
    [
        ("prb_recommended", "final-rating", lambda e: s.final(2024, authority=e)),
        ("hlr_requested", "higher-level-review", lambda e: s.hlr(2024) | {"reviewer_id": e}),
    ],
    ids=["appointing_authority_id", "reviewer_id"],
)
def test_no_one_decides_or_reviews_their_own_appraisal(
    shared_api: Api, stage: str, step: str, body: Callable[[str], dict[str, object]]
) -> None:
    """docs/api.md, "Who may do what": "No one acts as an official (rating official,
    reviewer, appointing authority) on their own appraisal" (PRB-3 says it of board
    members). `hr_app` naming the executive as their own appointing authority or
    higher-level reviewer is 403, nothing appended; `test_access.py` covered the rating
    official and the progress reviewer only."""
    a = shared_api.appraisal(stage)
    size = shared_api.ledger_size()
    r = shared_api.post(f"/v1/appraisals/{a.appraisal_id}/{step}", body(a.executive_id))
    assert r.status_code == 403 and "own appraisal" in r.json()["detail"], r.text
    assert shared_api.ledger_size() == size


def test_an_executive_replaying_learns_no_other_executives_day(
    sqlite_config: LedgerConfig,
) -> None:
    """api-contract.md, "Who may do what": `executive` reads "only own records". In an
    `as_of_position` replay of their removal history, D defaults to the day of the last
    event up to N (docs/api.md) that the token may read (`api.access.visible_streams`): for
    an `executive` token, their own record's, not that of another executive of the same
    agency recorded later (the replay test covered another agency's event only)."""
    clock = [datetime(2024, 11, 20, 12, tzinfo=UTC)]
    ledger = LedgerApp(sqlite_config, clock=lambda: clock[0])
    app = create_app(
        ledger, settings=ApiSettings(home=sqlite_config.home, checkpoint_interval_seconds=0)
    )
    try:
        with TestClient(app) as client:
            api = Api(client, app.state.services.token_key)
            appraisal = api.appraisal("final", fy=2024, level=2)
            clock[0] = datetime(2024, 12, 10, 12, tzinfo=UTC)
            api.new_executive()  # position N: another DOE executive's record
            n = api.get("/v1/ledger/events", api.auditor, limit=1000).json()["events"][-1]
            assert n["recorded_at"].startswith("2024-12-10")
            history = f"/v1/executives/{appraisal.executive_id}/removal-history"
            own = api.as_("executive", subject=appraisal.executive_id)
            r = api.get(history, own, as_of_position=n["position"])
            assert r.status_code == 200 and r.json()["as_of"] == "2024-11-20", r.text
            # a reader of the agency reads N's record too: the day of N
            assert api.get(history, api.hr, as_of_position=n["position"]).json()["as_of"] == (
                "2024-12-10"
            )
    finally:
        ledger.close()


def test_another_agencys_appraisal_trail_is_refused_as_its_executives_is(shared_api: Api) -> None:
    """api-contract.md, "Who may do what": oversight reads stay in the token's agency unless
    it is `*`. The audit trail of another agency's appraisal is 403, as that of another
    agency's executive is, and the 403 does not name the agency: an empty 200 page for an
    id that exists (404 for one that does not) told a DOT auditor which ids were DOE's."""
    a = shared_api.appraisal("planned")
    dot_auditor = shared_api.as_("auditor", subject="aud-dot", agency="DOT")
    r = shared_api.get("/v1/reports/audit-trail", dot_auditor, appraisal_id=a.appraisal_id)
    assert r.status_code == 403 and "DOE" not in r.text, r.text
    ok = shared_api.get("/v1/reports/audit-trail", appraisal_id=a.appraisal_id)
    assert ok.status_code == 200 and ok.json()["events"], ok.text


def test_compliance_covers_the_token_agency_when_none_is_named(shared_api: Api) -> None:
    """api-contract.md, "Who may do what": reports cover the token's "own agency unless the
    token's agency is `*`". A DOT token asking for compliance without `agency` hears no
    DOE finding (the refusal of `agency=DOE` was tested; the default was not)."""
    a = shared_api.appraisal("planned", fy=2024)  # no progress review by period end
    everyone = shared_api.get("/v1/reports/compliance").json()["findings"]
    assert a.appraisal_id in {f["subject_id"] for f in everyone}
    dot = shared_api.as_("hr_app", subject="hr-dot", agency="DOT")
    r = shared_api.get("/v1/reports/compliance", dot)
    assert r.status_code == 200, r.text
    assert a.appraisal_id not in r.text and a.executive_id not in r.text
