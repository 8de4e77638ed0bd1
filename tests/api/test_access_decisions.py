"""Edges of the contract's Authentication section and "Who may do what" table that the
request matrices in `test_access.py` and `test_auth.py` did not pin down: each test here
was written against a hand mutant of `api/auth.py`, `api/access.py` or a router that those
matrices let pass (QA mutation pass of 2026-12-01), and fails with it.
"""

from __future__ import annotations

import time

import jwt
import pytest

from api.auth import ALL_AGENCIES, Principal, Role, TokenError, decode_token
from api.errors import Forbidden
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
