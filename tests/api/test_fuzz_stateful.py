"""Stateful fuzzing of the write API against a real `ses-ledger serve`, SQLite and PostgreSQL.

The promise to HR applications (docs/api.md, "Writes" and "Errors"; api-contract.md,
"Errors"): retries are safe, bad input gets a clear 4xx, and nothing is appended on a
rejected request. A hypothesis state machine registers executives and review boards (of 2
to 5 members, careers mixed), grants rating cap waivers, sets plans and walks appraisals
through their steps, records personnel actions and complaints, with valid and invalid
steps mixed: dates at the rule boundaries (PER-2 day 89/90, PER-3 day 119/120 after an
Inauguration Day, RAT-7 day 9/10, REM-5 29/30 days, REM-7 14/15 days), tokens of the wrong
role, agency or official, missing tokens, repeated `Idempotency-Key`s with the same and
other bodies, stale and future `If-Match` versions, and malformed bodies (wrong JSON types,
long strings, deep nesting, NUL, lone surrogates, bidi controls, duplicate names, numbers
such as 1e400, -0 and 3.0, extra and missing fields). After every response:

- no 5xx;
- a 4xx is `application/problem+json` whose (status, `type`) pair docs/api.md lists, with a
  title and a sentence; a `rule-violation` names a rule rules.md lists as *enforce* (a flag
  never refuses); an `invalid-request` lists its errors as `{loc, msg}`;
- the ledger (`GET /v1/ledger/events` after the last position seen) did not move on a 4xx,
  and moved by exactly the returned entries on a 201;
- a request sent again with its `Idempotency-Key` answers the first 201 byte for byte and
  appends nothing; the key with another request is 422 `idempotency-key-reused`;
- a stale or future `If-Match` never writes; a token that may not write never writes
  (401 without one, 403 otherwise), nor one naming the appraisal's own executive as its
  official;
- an initial or final rating, removal or hearing request on the wrong side of its
  boundary is never recorded, and a refusal naming that rule is on the wrong side.

Bounded to stay fast (`SES_FUZZ_EXAMPLES` runs of `SES_FUZZ_STEPS` steps per backend,
2 x 40, the same every time); set them higher to search longer, `SES_FUZZ_RANDOM=1` for
new cases each run, `SES_FUZZ_SHRINK=1` to shrink a failure (slow: every step is HTTP),
`SES_FUZZ_SERVE_ARGS="--workers 3"` for a server of several workers.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from api.auth import issue_token
from tests.api import story as s
from tests.api.server import Server, keyed_env
from tests.conftest import PG_URL, pg_schema_name, require_postgres

EXAMPLES = int(os.environ.get("SES_FUZZ_EXAMPLES", "2"))
STEPS = int(os.environ.get("SES_FUZZ_STEPS", "40"))
#: `serve` arguments, e.g. `--workers 2` (reads then see other workers' writes only within
#: SES_LEDGER_PROJECTION_INTERVAL_SECONDS, so the read-your-writes check is left out).
SERVER_ARGS = os.environ.get("SES_FUZZ_SERVE_ARGS", "").split()

ROOT = Path(__file__).resolve().parents[2]
PROBLEM = "application/problem+json"
URN = "urn:ses-ledger:problem:"


def _rules_md() -> Path:
    for path in (ROOT.parent / "shared" / "rules.md", Path("/work/shared/rules.md")):
        if path.is_file():
            return path
    pytest.fail("rules.md is not beside the checkout (../shared/rules.md)")


def _rules() -> dict[str, str]:
    """rules.md's rule IDs, each with its kind (`enforce`, `flag`, ...)."""
    rules = {}
    for line in _rules_md().read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and re.fullmatch(r"[A-Z]+-\d+", cells[0]):
            rules[cells[0]] = cells[-1]
    assert {"SEQ-1", "PER-2", "REM-5", "RAT-9"} <= set(rules), rules
    return rules


def _documented_problems() -> set[tuple[int, str]]:
    """(status, slug) of every row of docs/api.md's error table."""
    text = (ROOT / "docs" / "api.md").read_text()
    section = text.split("\n## Errors\n", 1)[1].split("\n## ", 1)[0]
    table = next(part for part in section.split("\n\n") if part.startswith("| status |"))
    found = set(re.findall(r"^\| (\d{3}) \| `([a-z-]+)` \|", table, re.M))
    assert ("422", "rule-violation") in found, found
    return {(int(status), slug) for status, slug in found}


RULES = _rules()
DOCUMENTED = _documented_problems()
ENFORCED = {rule for rule, kind in RULES.items() if kind.startswith("enforce")}

# --- the servers ----------------------------------------------------------------------------


@dataclass
class Target:
    url: str
    key: bytes


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    tmp = tmp_path_factory.mktemp("fuzz")
    extra: dict[str, str] = {}
    schema = None
    if request.param == "postgres":
        require_postgres()
        import psycopg

        schema = pg_schema_name()
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        extra["SES_LEDGER_DB"] = f"{PG_URL}?schema={schema}"
    env = keyed_env(tmp, **extra)
    env["SES_LEDGER_CHECKPOINT_INTERVAL_SECONDS"] = "0"
    try:
        with Server(env, *SERVER_ARGS, log=tmp / "server.log") as server:
            key = bytes.fromhex((tmp / "home" / "token.key").read_text().strip())
            yield Target(server.url, key)
    finally:
        if schema is not None:
            import psycopg

            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


# --- the model --------------------------------------------------------------------------------

AGENCIES = ["DOE", "DOT"]
INAUGURATIONS = [date(2017, 1, 20), date(2021, 1, 20), date(2025, 1, 20), date(2029, 1, 20)]
BASIC = s.BASIC_ELEMENTS
SES_2025 = [
    {"code": "faithful_administration", "weight": 40, "requirements": ["Carry out the law."]},
    {"code": "government_efficiency", "weight": 15, "requirements": ["Cut waste."]},
    {"code": "merit_and_competence", "weight": 15, "requirements": ["Hire on merit."]},
    {"code": "accountability_and_fairness", "weight": 15, "requirements": ["Be fair."]},
    {
        "code": "organizational_goals",
        "weight": 15,
        "requirements": ["Goal 1 (strategic goal 1).", "Goal 2 (sg 2).", "Goal 3 (sg 3)."],
    },
]
#: Fiscal years planned: FY2021 and FY2025 hold a PER-3 window, FY2026 is `ses-2025`'s.
YEARS = [2021, 2024, 2025, 2026]


@dataclass
class Executive:
    executive_id: str
    agency: str
    career: bool
    probationary: bool


@dataclass
class Board:
    board_id: str
    agency: str


@dataclass
class Appraisal:
    appraisal_id: str
    executive: Executive
    fy: int
    policy: str
    start: date
    end: date
    communicated: date
    rated_on: date | None = None
    shared_on: date | None = None
    responded: bool = False
    waived: bool = False
    hlr_requested: bool = False
    hlr_done: bool = False
    prb_on: date | None = None
    final: bool = False

    @property
    def codes(self) -> list[str]:
        return [e["code"] for e in (SES_2025 if self.policy == "ses-2025" else BASIC)]


@dataclass
class Sent:
    """A request that was answered 201 with an `Idempotency-Key`."""

    method: str
    path: str
    body: Any
    headers: dict[str, str]
    status: int
    content: bytes


def _per_3_window(day: date) -> bool:
    """PER-3: a career executive's rating less than 120 days after an Inauguration Day."""
    return any(0 <= (day - i).days < 120 for i in INAUGURATIONS)


def _d(day: date) -> str:
    return day.isoformat()


# Malformed values for a field: JSON text put in place of the field's value.
RAW_VALUES = [
    "null",
    "true",
    "17",
    "1.5",
    "[]",
    "{}",
    '"x"',
    "1e400",
    "-1e400",
    "-0",
    "3.0",
    "4E0",
    "-0.0",
    "1" + "0" * 400,
    "[" * 60 + "]" * 60,
    "[" * 3000 + "]" * 3000,
    '{"a": ' * 100 + "1" + "}" * 100,
    '"\\u0000"',
    '"a\\u0000b"',
    '"\\ud800"',
    '"x\\udc80y"',
    '"\\udbff\\udfff"',
    '"\\u202e"',
    '"Pat \\u202eelpmaxE"',
    '"a\\u2066b"',
    '"\\u200f"',
    '"\\uffff"',
    '"\\ufeff"',
    '"\\u0301"',
    '"\\ud83d\\ude00 \\u00e9"',
    '"\\u2028"',
    '"\\u0085"',
    '"' + "x" * 129 + '"',
    '"' + "x" * 301 + '"',
    '"' + "x" * 20_001 + '"',
    '"' + "\\u00e9" * 20_000 + '"',
    '"2024-02-30"',
    '"2024-1-1"',
    '"+2024-01-01"',
    '"2024-01-01T00:00:00Z"',
    '"1899-12-31"',
    '"2200-01-01"',
    '"\\uff12\\uff10\\uff12\\uff14-01-01"',  # full-width digits
    '"FY\\u0662\\u0660\\u0662\\u0666"',  # Arabic-Indic digits
    '"DOE "',
    '"*"',
    '"WAIVER-DOE-FY2031"',
]
MUTATIONS = ["value", "extra", "missing", "duplicate", "duplicate-same", "wrap", "trailing"]


class Ledger(RuleBasedStateMachine):
    """The API's writes, valid and not, each checked against the promise above."""

    target: Target
    run = ""

    executives = Bundle("executives")
    boards = Bundle("boards")
    appraisals = Bundle("appraisals")

    def __init__(self) -> None:
        super().__init__()
        self.client = httpx.Client(base_url=self.target.url, timeout=60)
        self.prefix = f"F{uuid.uuid4().hex[:8]}-"
        self.ids = 0
        existing = self._events_after(0)
        self.head = existing[-1]["position"] if existing else 0
        self.remembered: dict[tuple[str, str], Sent] = {}
        self.last_who = ""
        self.versions: dict[str, int] = {}

    def teardown(self) -> None:
        self.client.close()

    # -- plumbing ---------------------------------------------------------------------------

    def new_id(self, kind: str) -> str:
        self.ids += 1
        return f"{self.prefix}{kind}{self.ids}"

    def token(self, subject: str, roles: list[str], agency: str) -> dict[str, str]:
        token = issue_token(
            self.target.key, subject=subject, roles=roles, agency=agency, ttl_seconds=3600
        )
        return {"Authorization": f"Bearer {token}"}

    def _events_after(self, after: int) -> list[dict[str, Any]]:
        auditor = self.token("fuzz-auditor", ["auditor"], "*")
        events: list[dict[str, Any]] = []
        while True:
            r = self.client.get(
                "/v1/ledger/events", params={"after": after, "limit": 1000}, headers=auditor
            )
            assert r.status_code == 200, r.text
            page = r.json()
            events += page["events"]
            if page["next_after"] is None:
                return events
            after = page["next_after"]

    def send(
        self,
        path: str,
        body: Any,
        headers: dict[str, str],
        *,
        raw: bytes | None = None,
        key: str | None = None,
        if_match: str | None = None,
    ) -> httpx.Response:
        """POST, then hold the answer to the promise (module docstring)."""
        headers = {**headers, "Content-Type": "application/json"}
        if key is not None:
            headers["Idempotency-Key"] = key
        if if_match is not None:
            headers["If-Match"] = if_match
        content = raw if raw is not None else json.dumps(body).encode()
        r = self.client.post(path, content=content, headers=headers)
        self.check(r, path, body if raw is None else None, headers)
        return r

    def earlier(self, headers: dict[str, str]) -> Sent | None:
        """The 201 an earlier request with this request's key and subject got."""
        key = headers.get("Idempotency-Key")
        return None if key is None else self.remembered.get((self.subject(headers), key))

    @staticmethod
    def subject(headers: dict[str, str]) -> str:
        token = headers.get("Authorization", "").removeprefix("Bearer ")
        if not token:
            return ""
        claims = token.split(".")[1]
        return str(json.loads(base64.urlsafe_b64decode(claims + "==="))["sub"])

    def check(self, r: httpx.Response, path: str, body: Any, headers: dict[str, str]) -> None:
        where = f"POST {path} -> {r.status_code} {r.text[:500]}"
        assert r.status_code < 500, where
        moved = self._events_after(self.head)
        if r.status_code >= 400:
            assert r.headers["content-type"] == PROBLEM, where
            problem = r.json()
            assert problem["type"].startswith(URN), where
            slug = problem["type"][len(URN) :]
            assert (r.status_code, slug) in DOCUMENTED, where
            assert problem["status"] == r.status_code, where
            assert isinstance(problem["title"], str) and problem["title"], where
            assert isinstance(problem["detail"], str) and len(problem["detail"]) > 10, where
            if slug == "rule-violation":
                assert problem.get("rule") in ENFORCED, (where, "not an enforced rules.md rule")
            if slug == "invalid-request":
                assert problem["errors"], where
                assert all(set(e) == {"loc", "msg"} for e in problem["errors"]), where
            if r.status_code == 401:
                assert r.headers.get("www-authenticate") == "Bearer", where
            assert moved == [], (where, "a refused request appended", moved)
            return
        assert r.status_code == 201, where
        before = self.earlier(headers)
        if before is not None and before.content == r.content:  # a replay: nothing new
            assert moved == [], (where, "a replayed request appended", moved)
            return
        result = r.json()
        entries = result.get("events", [result["event"]])
        assert [e["hash"] for e in moved] == [e["hash"] for e in entries], (where, moved)
        assert result["receipt"]["position"] == moved[-1]["position"], where
        for entry in entries:  # every stream this machine writes is its own, from version 1
            version = self.versions.get(entry["stream_id"], 0) + 1
            assert entry["stream_version"] == version, (where, self.versions)
            self.versions[entry["stream_id"]] = version
        self.head = moved[-1]["position"]
        key = headers.get("Idempotency-Key")
        if key is not None:
            assert before is None, (where, "a key used before wrote again", before)
            self.remembered[(self.subject(headers), key)] = Sent(
                "POST", path, body, headers, r.status_code, r.content
            )

    def key(self, data: st.DataObject) -> str | None:
        """Often none; else one of a few per run, so that keys meet again."""
        choice = data.draw(st.sampled_from([None, None, "k1", "k2", "k3", "new"]), label="key")
        if choice is None:
            return None
        return f"{self.prefix}{uuid.uuid4().hex[:6]}" if choice == "new" else self.prefix + choice

    def expect_with_key(
        self, r: httpx.Response, headers: dict[str, str], path: str, body: Any, key: str | None
    ) -> bool:
        """When the key was used before (a 201) by this subject: the same request answers
        the first response, another is 422 `idempotency-key-reused`. Whether it was."""
        if key is None:
            return False
        before = self.remembered.get((self.subject(headers), key))
        if before is None or before.content == r.content:
            return before is not None
        same = before.path == path and before.body == body
        where = (path, r.status_code, r.text[:300], before.path, before.body, body)
        if same and r.status_code in (401, 403):
            return True  # sent with a token that may not: refused before the key is looked at
        assert not same, ("a retry did not answer the first response", where)
        assert r.status_code != 201, ("a reused key wrote again", where)
        if r.status_code == 422 and r.json()["type"].endswith("idempotency-key-reused"):
            return True
        # refused before the key was looked at: an invalid body or a token that may not
        assert r.status_code in (401, 403, 404, 422), where
        assert not r.json()["type"].endswith("rule-violation"), ("judged, not reused", where)
        return True

    def who(
        self, data: st.DataObject, agency: str, acting: tuple[str, str] | None, hr: bool = True
    ) -> tuple[dict[str, str], bool]:
        """A caller's headers and whether it may write: `acting` is (role, official id) of
        the acting official this request names, if any."""
        options = ["hr", "hr", "hr", "hr-star", "hr-other", "auditor", "none", "admin"]
        if acting is not None:
            options += ["official", "official", "official-other"]
        choice = data.draw(st.sampled_from(options), label="who")
        self.last_who = choice
        other = AGENCIES[1 - AGENCIES.index(agency)] if agency in AGENCIES else "DOE"
        if choice == "hr":
            return self.token("hr-app-1", ["hr_app"], agency), hr
        if choice == "hr-star":
            return self.token("hr-app-star", ["hr_app"], "*"), hr
        if choice == "hr-other":
            return self.token("hr-app-2", ["hr_app"], other), False
        if choice == "auditor":
            return self.token("aud-1", ["auditor", "hr_app"], agency), False
        if choice == "none":
            return {}, False
        if choice == "admin":
            return self.token("admin-1", ["admin"], agency), not hr
        assert acting is not None
        role, official = acting
        if choice == "official":
            return self.token(official, [role], agency), True
        return self.token(official + "x", [role], agency), False

    def refused_caller(self, r: httpx.Response, headers: dict[str, str]) -> None:
        where = (r.status_code, r.text[:300])
        assert r.status_code in (401, 403), where
        assert r.status_code == (401 if "Authorization" not in headers else 403), where

    # -- registrations ----------------------------------------------------------------------

    @initialize(target=boards)
    def register_boards(self) -> Any:
        made = []
        for agency in AGENCIES:
            board_id = self.new_id("PRB")
            body = s.board(board_id, agency)
            r = self.send("/v1/review-boards", body, self.token("admin-1", ["admin"], agency))
            assert r.status_code == 201, r.text
            made.append(Board(board_id, agency))
        return multiple(*made)

    @rule(target=boards, data=st.data())
    def register_board(self, data: st.DataObject) -> Any:
        """Boards of 2 to 5 members, careers mixed (PRB-1, PRB-2 are judged at the PRB),
        published near the recommendations (PRB-4)."""
        agency = data.draw(st.sampled_from(AGENCIES), label="agency")
        size = data.draw(st.integers(2, 5), label="members")
        careers = data.draw(st.lists(st.booleans(), min_size=size, max_size=size))
        published = date(2020, 1, 1) + timedelta(days=data.draw(st.integers(0, 2600)))
        board_id = self.new_id("PRB")
        body = {
            "board_id": board_id,
            "agency": agency,
            "federal_register_published_on": _d(published),
            "members": [
                {"member_id": f"M{i + 1}", "name": f"Member {i + 1}", "career": career}
                for i, career in enumerate(careers)
            ],
        }
        admin = data.draw(st.sampled_from(["admin", "admin", "hr", "admin-other"]))
        headers = self.token(
            "admin-1" if admin != "hr" else "hr-app-1",
            ["hr_app"] if admin == "hr" else ["admin"],
            agency if admin != "admin-other" else "DOI",
        )
        key = self.key(data)
        r = self.send("/v1/review-boards", body, headers, key=key)
        if self.expect_with_key(r, headers, "/v1/review-boards", body, key):
            return multiple()
        if admin != "admin":
            self.refused_caller(r, headers)
        return Board(board_id, agency) if r.status_code == 201 else multiple()

    @rule(data=st.data())
    def grant_waiver(self, data: st.DataObject) -> None:
        # an agency of this run's own: a waiver per agency and cycle is state the server
        # keeps across runs, which would make the same steps answer differently
        agency = self.prefix[:-1] + data.draw(st.sampled_from(["", "X"]), label="agency")
        cycle = f"FY{data.draw(st.integers(2024, 2030))}"
        body = {
            "agency": agency,
            "cycle": cycle,
            "granted_on": _d(date(2026, 1, 1) + timedelta(days=data.draw(st.integers(0, 400)))),
            "reference": "Presidential memorandum",
        }
        key = self.key(data)
        headers = self.token("admin-1", ["admin"], "*")
        r = self.send("/v1/rating-cap-waivers", body, headers, key=key)
        if self.expect_with_key(r, headers, "/v1/rating-cap-waivers", body, key):
            return
        assert r.status_code in (201, 409), r.text  # taken: that agency's cycle has one

    @rule(a=appraisals, data=st.data())
    def own_appraisal(self, a: Appraisal, data: st.DataObject) -> None:
        """No one acts as an official on their own appraisal: 403, whoever submits it."""
        executive_id = a.executive.executive_id
        step, body = data.draw(
            st.sampled_from(
                [
                    (
                        "progress-reviews",
                        {"reviewed_on": _d(a.end), "reviewer_id": executive_id, "notes": "x"},
                    ),
                    (
                        "final-rating",
                        {
                            "appointing_authority_id": executive_id,
                            "rated_on": _d(a.end),
                            "level": 3,
                        },
                    ),
                ]
            )
        )
        role = "rating_official" if step == "progress-reviews" else "appointing_authority"
        headers = data.draw(
            st.sampled_from(
                [
                    self.token("hr-app-1", ["hr_app"], a.executive.agency),
                    self.token(executive_id, [role, "executive"], a.executive.agency),
                ]
            )
        )
        r = self.send(f"/v1/appraisals/{a.appraisal_id}/{step}", body, headers)
        assert r.status_code == 403, r.text

    @rule(target=executives, data=st.data())
    def register_executive(self, data: st.DataObject) -> Any:
        agency = data.draw(st.sampled_from(AGENCIES), label="agency")
        kind = data.draw(
            st.sampled_from(["career", "career", "noncareer", "limited_term"]), label="type"
        )
        probationary = data.draw(st.booleans(), label="probationary")
        executive_id = self.new_id("E")
        body = s.executive(executive_id, agency, appointment_type=kind, probationary=probationary)
        headers, may = self.who(data, agency, None)
        if self.last_who == "admin":
            may = True  # POST /v1/executives: hr_app and admin
        key = self.key(data)
        r = self.send("/v1/executives", body, headers, key=key)
        if self.expect_with_key(r, headers, "/v1/executives", body, key):
            return multiple()
        if not may:
            self.refused_caller(r, headers)
        if r.status_code == 201:
            return Executive(executive_id, agency, kind == "career", probationary)
        return multiple()

    @rule(target=appraisals, executive=executives, data=st.data())
    def set_plan(self, executive: Executive, data: st.DataObject) -> Any:
        fy = data.draw(st.sampled_from(YEARS), label="fy")
        start = date(fy - 1, 10, 1)
        end = date(fy, 9, 30)
        communicated = start + timedelta(days=data.draw(st.sampled_from([0, 0, 1, 31]), label="c"))
        policy = "ses-2025" if fy >= 2026 else "ses-basic-2012"
        if data.draw(st.integers(0, 9), label="other policy") == 0:
            policy = "ses-basic-2012" if policy == "ses-2025" else "ses-2025"
        elements = [dict(e) for e in (SES_2025 if policy == "ses-2025" else BASIC)]
        if data.draw(st.integers(0, 7), label="bad weights") == 0:
            elements[0]["weight"] += data.draw(st.sampled_from([-1, 1, 5]), label="delta")
        appraisal_id = self.new_id("A")
        body = {
            "appraisal_id": appraisal_id,
            "executive_id": executive.executive_id,
            "policy": policy,
            "period_start": _d(start),
            "period_end": _d(end),
            "rating_official_id": "R1",
            "communicated_on": _d(communicated),
            "elements": elements,
        }
        headers, may = self.who(data, executive.agency, ("rating_official", "R1"))
        key = self.key(data)
        r = self.send("/v1/appraisals", body, headers, key=key)
        if self.expect_with_key(r, headers, "/v1/appraisals", body, key):
            return multiple()
        if not may:
            self.refused_caller(r, headers)
        if r.status_code != 201:
            return multiple()
        return Appraisal(appraisal_id, executive, fy, policy, start, end, communicated)

    # -- appraisal steps --------------------------------------------------------------------

    def version(self, a: Appraisal) -> int:
        return self.versions[a.appraisal_id]

    def _if_match(self, data: st.DataObject, a: Appraisal) -> tuple[str | None, bool]:
        """An `If-Match` value and whether it is stale (or ahead)."""
        version = self.version(a)
        choice = data.draw(
            st.sampled_from(["none", "none", "current", "quoted", "stale", "ahead"]),
            label="if-match",
        )
        if choice == "none":
            return None, False
        if choice == "current":
            return str(version), False
        if choice == "quoted":
            return f'"{version}"', False
        return str(version - 1 if choice == "stale" else version + 1), True

    def _step(
        self,
        data: st.DataObject,
        a: Appraisal,
        step: str,
        body: dict[str, Any],
        acting: tuple[str, str] | None,
    ) -> httpx.Response | None:
        """Send an appraisal step; None when it was refused as it had to be or replayed."""
        path = f"/v1/appraisals/{a.appraisal_id}/{step}"
        headers, may = self.who(data, a.executive.agency, acting)
        if_match, stale = self._if_match(data, a)
        key = self.key(data)
        r = self.send(path, body, headers, key=key, if_match=if_match)
        if self.expect_with_key(r, headers, path, body, key):
            return None
        if not may:
            self.refused_caller(r, headers)
            return None
        if stale:
            assert r.status_code != 201, ("a stale If-Match wrote", if_match, r.text)
            if r.status_code == 412:
                assert r.json()["current_version"] == self.version(a), r.text
            return None
        if r.status_code == 201 and "--workers" not in SERVER_ARGS:
            read = self.client.get(
                f"/v1/appraisals/{a.appraisal_id}", headers=self.token("aud-1", ["auditor"], "*")
            )
            assert read.status_code == 200, read.text
            assert read.json()["version"] == self.version(a), read.text
        return r

    def _rule(self, r: httpx.Response) -> str | None:
        if r.status_code == 422 and r.json()["type"].endswith("rule-violation"):
            return str(r.json()["rule"])
        return None

    @rule(a=appraisals, data=st.data())
    def progress_review(self, a: Appraisal, data: st.DataObject) -> None:
        day = a.start + timedelta(days=data.draw(st.integers(-5, 400), label="day"))
        body = {"reviewed_on": _d(day), "reviewer_id": "R1", "notes": "Quarterly review."}
        self._step(data, a, "progress-reviews", body, ("rating_official", "R1"))

    @rule(a=appraisals, data=st.data())
    def extend_period(self, a: Appraisal, data: st.DataObject) -> None:
        new_end = a.end + timedelta(days=data.draw(st.sampled_from([-30, 0, 1, 60]), label="e"))
        body = {"extended_on": _d(a.end), "new_period_end": _d(new_end), "reason": "Detail."}
        r = self._step(data, a, "period-extension", body, ("rating_official", "R1"))
        if r is not None and r.status_code == 201:
            a.end = new_end

    @rule(a=appraisals, data=st.data())
    def initial_rating(self, a: Appraisal, data: st.DataObject) -> None:
        base = max(a.start, a.communicated)
        near = [base + timedelta(days=n) for n in (89, 90, 91, 200, 380)]
        near += [i + timedelta(days=n) for i in INAUGURATIONS for n in (119, 120)]
        rated_on = data.draw(st.sampled_from(near), label="rated_on")
        level = data.draw(st.sampled_from([1, 2, 3, 4, 5, 0, 6]), label="level")
        body: dict[str, Any] = {
            "rated_on": _d(rated_on),
            "rating_official_id": "R1",
            "element_levels": dict.fromkeys(a.codes, level),
            "narrative": "Written rating.",
        }
        if data.draw(st.booleans(), label="shared later"):
            body["shared_on"] = _d(rated_on + timedelta(days=data.draw(st.integers(-1, 3))))
        r = self._step(data, a, "initial-rating", body, ("rating_official", "R1"))
        if r is None:
            return
        early = (rated_on - base).days < 90
        transition = a.executive.career and _per_3_window(rated_on)
        if early or transition:
            assert r.status_code != 201, ("PER-2/PER-3 boundary crossed", body, a)
        if self._rule(r) == "PER-2":
            assert early, (body, a, r.text)
        if self._rule(r) == "PER-3":
            assert transition, (body, a, r.text)
        if r.status_code == 201:
            a.rated_on = rated_on
            a.shared_on = date.fromisoformat(body.get("shared_on", body["rated_on"]))

    @rule(a=appraisals, data=st.data())
    def respond_or_waive(self, a: Appraisal, data: st.DataObject) -> None:
        step = data.draw(
            st.sampled_from(
                ["executive-response", "response-waiver", "higher-level-review-request"]
            )
        )
        anchor = a.shared_on or a.end
        day = _d(anchor + timedelta(days=data.draw(st.integers(-1, 12), label="day")))
        body = {
            "executive-response": {"submitted_on": day, "text": "I disagree."},
            "response-waiver": {"waived_on": day},
            "higher-level-review-request": {"requested_on": day},
        }[step]
        official = ("executive", a.executive.executive_id)
        r = self._step(data, a, step, body, official)
        if r is not None and r.status_code == 201:
            a.responded |= step == "executive-response"
            a.waived |= step == "response-waiver"
            a.hlr_requested |= step == "higher-level-review-request"

    @rule(a=appraisals, data=st.data())
    def higher_level_review(self, a: Appraisal, data: st.DataObject) -> None:
        anchor = a.shared_on or a.end
        day = anchor + timedelta(days=data.draw(st.integers(-1, 20), label="day"))
        body = {
            "reviewer_id": "H1",
            "reviewed_on": _d(day),
            "recommended_level": data.draw(st.integers(0, 6), label="level"),
            "rationale": "The record supports it.",
        }
        r = self._step(data, a, "higher-level-review", body, ("hlr_official", "H1"))
        if r is not None and r.status_code == 201:
            a.hlr_done = True

    @rule(a=appraisals, boards=st.lists(boards, min_size=1, max_size=1), data=st.data())
    def prb_recommendation(self, a: Appraisal, boards: list[Board], data: st.DataObject) -> None:
        board = boards[0]
        anchor = a.shared_on or a.end
        day = anchor + timedelta(days=data.draw(st.sampled_from([-1, 9, 10, 11, 30])))
        considered = ["initial_rating"]
        if a.responded:
            considered.append("executive_response")
        if a.hlr_done:
            considered.append("higher_level_review")
        if data.draw(st.integers(0, 5), label="forget") == 0:
            considered = considered[:-1] or ["executive_response"]
        present = data.draw(
            st.sampled_from([["M1", "M2", "M3"], ["M1", "M2"], ["M2", "M3", "M4"], ["M1", "M4"]])
        )
        body = {
            "board_id": board.board_id,
            "members_present": present,
            "recommended_on": _d(day),
            "recommended_level": data.draw(st.integers(1, 5), label="level"),
            "rationale": "The board concurs.",
            "considered": considered,
        }
        r = self._step(data, a, "prb-recommendation", body, ("prb_member", present[0]))
        if r is None:
            return
        if board.agency != a.executive.agency and r.status_code != 403:
            assert r.status_code != 201, ("another agency's board recommended", r.text)
        if r.status_code == 201:
            a.prb_on = day

    @rule(a=appraisals, data=st.data())
    def final_rating(self, a: Appraisal, data: st.DataObject) -> None:
        anchor = a.prb_on or a.end
        near = [anchor + timedelta(days=n) for n in (-1, 0, 1, 10)]
        near += [i + timedelta(days=n) for i in INAUGURATIONS for n in (119, 120)]
        day = data.draw(st.sampled_from(near), label="rated_on")
        body = {
            "appointing_authority_id": "AA1",
            "rated_on": _d(day),
            "level": data.draw(st.sampled_from([1, 2, 3, 4, 5, 0]), label="level"),
        }
        r = self._step(data, a, "final-rating", body, ("appointing_authority", "AA1"))
        if r is None:
            return
        transition = a.executive.career and _per_3_window(day)
        if transition:
            assert r.status_code != 201, ("PER-3 boundary crossed", body, a)
        if self._rule(r) == "PER-3":
            assert transition, (body, a, r.text)
        if r.status_code == 201:
            a.final = True

    # -- executive records ------------------------------------------------------------------

    @rule(executive=executives, basis=st.lists(appraisals, max_size=2), data=st.data())
    def personnel_action(
        self, executive: Executive, basis: list[Appraisal], data: st.DataObject
    ) -> None:
        action = data.draw(
            st.sampled_from(["removal", "removal", "reassignment", "transfer", "demotion"])
        )
        notice = date(2025, 3, 3) + timedelta(days=data.draw(st.integers(0, 400), label="n"))
        lead = data.draw(st.sampled_from([29, 30, 31, 60]), label="lead")
        effective = notice + timedelta(days=lead)
        hearing = data.draw(st.sampled_from([None, 14, 15, 16, 40]), label="hearing")
        authority = data.draw(
            st.sampled_from(["5 CFR 359 subpart E", "5 CFR 359 subpart D", "5 U.S.C. 3592(a)(2)"])
        )
        body = {
            "action": action,
            "basis_appraisal_ids": sorted({b.appraisal_id for b in basis}),
            "notice_on": _d(notice),
            "effective_on": _d(effective),
            "authority": authority,
            "hearing_requested_on": None
            if hearing is None
            else _d(effective - timedelta(days=hearing)),
        }
        path = f"/v1/executives/{executive.executive_id}/personnel-actions"
        # personnel actions: hr_app, or any appointing authority of the agency
        headers, may = self.who(data, executive.agency, ("appointing_authority", "AA1"))
        may = may or self.last_who == "official-other"
        key = self.key(data)
        r = self.send(path, body, headers, key=key)
        if self.expect_with_key(r, headers, path, body, key):
            return
        if not may:
            self.refused_caller(r, headers)
            return
        rule_id = self._rule(r)
        if action == "removal" and lead < 30:
            assert r.status_code != 201, ("REM-5 boundary crossed", body)
        if rule_id == "REM-5":
            assert action == "removal" and lead < 30, (body, r.text)
        if action == "removal" and hearing is not None and hearing < 15:
            assert r.status_code != 201, ("REM-7 boundary crossed", body)
        if rule_id == "REM-7":  # requested too late, or before there was a notice
            assert hearing is not None, (body, r.text)
            allowed = action == "removal" and executive.career  # a career appointee's removal
            late = hearing < 15 or effective - timedelta(days=hearing) < notice
            assert late or not allowed, (body, r.text)
        if any(b.executive.executive_id != executive.executive_id for b in basis):
            assert r.status_code != 201, ("another executive's appraisal as basis", body)

    @rule(executive=executives, data=st.data())
    def complaint(self, executive: Executive, data: st.DataObject) -> None:
        body = {
            "forum": data.draw(st.sampled_from(["EEOC", "OSC"])),
            "filed_on": _d(date(2024, 1, 1) + timedelta(days=data.draw(st.integers(0, 900)))),
            "summary": "Complaint about the process.",
        }
        path = f"/v1/executives/{executive.executive_id}/complaints"
        headers, may = self.who(data, executive.agency, ("executive", executive.executive_id))
        key = self.key(data)
        r = self.send(path, body, headers, key=key)
        if self.expect_with_key(r, headers, path, body, key):
            return
        if not may:
            self.refused_caller(r, headers)

    # -- retries ----------------------------------------------------------------------------

    @precondition(lambda self: bool(self.remembered))
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        """A request sent again with its key: the first answer, byte for byte, nothing new;
        with another body: 422 `idempotency-key-reused`."""
        subject, key = data.draw(st.sampled_from(sorted(self.remembered)), label="sent")
        sent = self.remembered[(subject, key)]
        how = data.draw(st.sampled_from(["same", "same", "reordered", "other", "parallel"]))
        body = sent.body
        if how == "parallel":
            answers: list[httpx.Response] = []

            def post() -> None:
                with httpx.Client(base_url=self.target.url, timeout=60) as client:
                    answers.append(
                        client.post(sent.path, content=json.dumps(body), headers=sent.headers)
                    )

            threads = [threading.Thread(target=post) for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            for r in answers:
                assert r.status_code == 201 and r.content == sent.content, r.text
            assert self._events_after(self.head) == []
            return
        if how == "reordered":
            raw = json.dumps(dict(reversed(list(body.items()))), indent=1).encode()
            r = self.send(sent.path, body, sent.headers, raw=raw)
        elif how == "other":
            changed = dict(body)
            name, value = next(iter(body.items()))
            changed[name] = value + "9" if isinstance(value, str) else value
            if changed == body:
                return
            r = self.send(sent.path, changed, sent.headers)
            assert r.status_code == 422, r.text  # (the changed field may be invalid now)
            assert r.json()["type"] in {URN + "idempotency-key-reused", URN + "invalid-request"}
            return
        else:
            r = self.send(sent.path, body, sent.headers)
        assert r.status_code == 201 and r.content == sent.content, (how, r.text, sent.content)

    # -- malformed bodies -------------------------------------------------------------------

    @rule(a=appraisals, data=st.data())
    def malformed(self, a: Appraisal, data: st.DataObject) -> None:
        """A valid body for one of the writes, with one thing wrong in its JSON text."""
        bodies: dict[str, dict[str, Any]] = {
            "/v1/executives": s.executive(self.new_id("E"), a.executive.agency),
            "/v1/appraisals": {
                "appraisal_id": self.new_id("A"),
                "executive_id": a.executive.executive_id,
                "policy": a.policy,
                "period_start": _d(a.start),
                "period_end": _d(a.end),
                "rating_official_id": "R1",
                "communicated_on": _d(a.communicated),
                "elements": [dict(e) for e in (SES_2025 if a.policy == "ses-2025" else BASIC)],
            },
            f"/v1/appraisals/{a.appraisal_id}/initial-rating": {
                "rated_on": _d(a.start + timedelta(days=200)),
                "rating_official_id": "R1",
                "element_levels": dict.fromkeys(a.codes, 4),
                "narrative": "Written.",
            },
            f"/v1/appraisals/{a.appraisal_id}/progress-reviews": {
                "reviewed_on": _d(a.start + timedelta(days=100)),
                "reviewer_id": "R1",
                "notes": "Review.",
            },
            f"/v1/executives/{a.executive.executive_id}/complaints": s.complaint(),
            f"/v1/executives/{a.executive.executive_id}/personnel-actions": (
                s.personnel_action("reassignment")
            ),
            "/v1/rating-cap-waivers": s.waiver(a.executive.agency, "FY2031"),
        }
        path = data.draw(st.sampled_from(sorted(bodies)), label="path")
        body = bodies[path]
        raw = self._mutate(data, body)
        admin = "waiver" in path
        headers = self.token(
            "admin-1" if admin else "hr-app-1", ["admin" if admin else "hr_app"], a.executive.agency
        )
        r = self.send(path, body, headers, raw=raw)
        # what was recorded is what was sent
        if r.status_code == 201:
            sent = json.loads(raw)
            data_ = r.json()["event"]["data"]
            for name, value in sent.items():
                if name in data_ and not isinstance(value, (dict, list)):
                    assert data_[name] == value, (name, value, data_[name])

    def _mutate(self, data: st.DataObject, body: dict[str, Any]) -> bytes:
        how = data.draw(st.sampled_from(MUTATIONS), label="how")
        names = sorted(body)
        name = data.draw(st.sampled_from(names), label="field")
        placeholder = "\x00PLACEHOLDER\x00"
        if how == "value":
            nested = data.draw(st.booleans(), label="nested")
            target = body
            inner = body[name]
            if nested and isinstance(inner, dict) and inner:
                target = dict(inner)
                body = {**body, name: target}
                name = data.draw(st.sampled_from(sorted(target)), label="inner")
            elif nested and isinstance(inner, list) and inner and isinstance(inner[0], dict):
                target = dict(inner[0])
                body = {**body, name: [target, *inner[1:]]}
                name = data.draw(st.sampled_from(sorted(target)), label="inner")
            target[name] = placeholder
            value = data.draw(st.sampled_from(RAW_VALUES), label="value")
            return json.dumps(body).replace(json.dumps(placeholder), value).encode()
        text = json.dumps(body)
        if how == "extra":
            extra = data.draw(st.sampled_from(['"extra"', '"\\ud800"', '"\\u0000"', '""']))
            return ("{" + extra + ": 1, " + text[1:]).encode()
        if how == "missing":
            return json.dumps({k: v for k, v in body.items() if k != name}).encode()
        if how == "duplicate":
            return ("{" + json.dumps(name) + ': "other", ' + text[1:]).encode()
        if how == "duplicate-same":
            return (
                "{" + json.dumps(name) + ": " + json.dumps(body[name]) + ", " + text[1:]
            ).encode()
        if how == "wrap":
            return ("[" + text + "]").encode()
        return (text + data.draw(st.sampled_from([" x", "}", "\x00", " "]))).encode()


@pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
def test_the_write_api_keeps_its_promise(target: Target) -> None:
    Ledger.target = target
    run_state_machine_as_test(
        Ledger,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            derandomize=not os.environ.get("SES_FUZZ_RANDOM"),
            suppress_health_check=list(HealthCheck),
            database=None,
            phases=[Phase.explicit, Phase.reuse, Phase.generate]
            + ([Phase.shrink] if os.environ.get("SES_FUZZ_SHRINK") else []),
        ),
    )
