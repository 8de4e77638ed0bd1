"""Model-based test of the write API: a reference model, written from rules.md and
api-contract.md alone, predicts every answer.

A hypothesis state machine drives the app (in process, a fresh SQLite home per example)
through random sequences of appraisal actions across several executives, both policies
and two agencies: plans (weights valid or not, POL-1, PER-1), progress reviews, initial
ratings (PER-2, PER-3, RAT-1..4), responses, waivers, higher-level review requests and
reviews (RAT-5, RAT-6), PRB recommendations (RAT-7, PRB-1..5), final ratings (RAT-8,
PER-3), personnel actions (REM-4, REM-5, REM-7), complaints, review boards and rating
cap waivers; with callers of the wrong role, agency or official, steps out of order,
stale `If-Match` versions, and `Idempotency-Key`s sent again with the same or another
body. The model says what each request should get: 201, or the refusal (status, problem
type and, where it can tell, the rule IDs it may name). Where rules.md is silent (a
second response, a step dated before the previous one) the model accepts either outcome
and follows what was recorded.

After every step: a refused request appended nothing (the ledger's head did not move); a
201 appended exactly one entry, at the stream version the model expects; a request sent
again with its key answers the first response byte for byte and appends nothing; the
appraisal's and the executive's reads (stage, version, ratings, `current_rating`) agree
with the model. At teardown `GET /v1/ledger/verify` is ok and the read models rebuilt
from the log have the live ones' digests.

Where the contract leaves the product a choice, the model was widened after it disagreed
(each case judged from rules.md and the contract, none a product defect): a step dated
before the plan's communication or an earlier step may be refused as SEQ-1 (out of order)
beside the rule it also breaks; a request breaking several rules names any one of them
(the PRB refused as SEQ-1 while a requested higher-level review is pending); an unknown
reference in the body may be answered before a stale `If-Match` or a reused key is looked
at; `current_rating` may carry fields beyond the contract's.

`SES_STATEFUL_EXAMPLES` (default 2) runs of `SES_STATEFUL_STEPS` (default 20) steps,
the same every time; `SES_STATEFUL_RANDOM=1` for new cases each run, `SES_STATEFUL_SHRINK=1`
to shrink a failure (slow).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
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
from api.main import create_app
from api.settings import ApiSettings
from ledger.application import LedgerApp
from ledger.config import LedgerConfig
from ledger.keys import KeyRing
from projections.queries import ReadModels
from tests.api import story

EXAMPLES = int(os.environ.get("SES_STATEFUL_EXAMPLES", "2"))
STEPS = int(os.environ.get("SES_STATEFUL_STEPS", "20"))

URN = "urn:ses-ledger:problem:"
AGENCIES = ["DOE", "DOT"]
INAUGURATIONS = [date(2017, 1, 20), date(2021, 1, 20), date(2025, 1, 20), date(2029, 1, 20)]
POLICY_2025_FROM = date(2025, 10, 1)

#: rules.md, Policies: each policy's critical elements, the primary one first (WT-2, WT-5).
CODES = {
    "ses-basic-2012": [
        "results_driven",
        "leading_change",
        "leading_people",
        "business_acumen",
        "building_coalitions",
    ],
    "ses-2025": [
        "faithful_administration",
        "government_efficiency",
        "merit_and_competence",
        "accountability_and_fairness",
        "organizational_goals",
    ],
}
#: RAT-1: points per level.
POINTS = {5: 5, 4: 4, 3: 3, 2: 2, 1: 0}
RESPONSE_WINDOW = 10  # RAT-7's default
#: Stages of the contract's appraisal read that the model pins down exactly.
RESPONDED_STAGES = {"response_closed", "higher_level_review"}

# An expected outcome: (status, problem slug or None for 201, rule IDs or None for any).
Outcome = tuple[int, str | None, frozenset[str] | None]
CREATED: Outcome = (201, None, None)
#: Outcomes seen, by endpoint (printed with SES_STATEFUL_STATS=1).
SEEN: Counter[str] = Counter()


def refused(status: int, slug: str, *rules: str) -> Outcome:
    return (status, slug, frozenset(rules) if rules else None)


def rule_violation(*rules: str) -> Outcome:
    return refused(422, "rule-violation", *rules)


def _d(day: date) -> str:
    return day.isoformat()


def _per_3(day: date) -> bool:
    """PER-3: less than 120 days after an Inauguration Day (day 120 itself is allowed)."""
    return any(0 <= (day - i).days < 120 for i in INAUGURATIONS)


def _fiscal_year(day: date) -> int:
    return day.year + 1 if day.month >= 10 else day.year


def _add_year(day: date) -> date:
    try:
        return day.replace(year=day.year + 1)
    except ValueError:  # Feb 29
        return date(day.year + 1, 2, 28)


def summary_level(levels: dict[str, int], weights: dict[str, int]) -> tuple[int, int]:
    """RAT-2, RAT-3: (score, summary level)."""
    score = sum(POINTS[levels[c]] * weights[c] for c in weights)
    if 1 in levels.values():
        return score, 1
    for floor, level in ((475, 5), (400, 4), (300, 3), (200, 2)):
        if score >= floor:
            return score, level
    return score, 1


def weight_violations(policy: str, elements: list[tuple[str, int]]) -> set[str]:
    """WT-1..WT-6 broken by a plan's elements (code, weight)."""
    codes = [c for c, _ in elements]
    if sorted(codes) != sorted(CODES[policy]) or sum(w for _, w in elements) != 100:
        return {"WT-1"}
    weights = dict(elements)
    primary = CODES[policy][0]
    others = [weights[c] for c in CODES[policy][1:]]
    broken = set()
    if policy == "ses-basic-2012":
        if weights[primary] < 20:
            broken.add("WT-2")
        if min(others) < 5:
            broken.add("WT-3")
        if max(others) > weights[primary]:
            broken.add("WT-4")
    else:
        if weights[primary] < 25:
            broken.add("WT-5")
        if min(others) < 15:
            broken.add("WT-6")
    return broken


# --- the model's records ------------------------------------------------------------------


@dataclass
class Executive:
    executive_id: str
    agency: str
    career: bool
    probationary: bool
    version: int = 1
    finals: list[tuple[Appraisal, date, int]] = field(default_factory=list)


@dataclass
class Board:
    board_id: str
    agency: str
    published_on: date
    members: dict[str, bool]  # member_id: career


@dataclass
class Appraisal:
    appraisal_id: str
    executive: Executive
    policy: str
    start: date
    end: date
    communicated: date
    weights: dict[str, int]
    version: int = 1
    reviewed: bool = False
    rated_on: date | None = None
    shared_on: date | None = None
    score: int | None = None
    level: int | None = None
    levels: dict[str, int] | None = None
    responded: bool = False
    waived: bool = False
    hlr_requested: bool = False
    hlr_done: bool = False
    prb_on: date | None = None
    final: tuple[date, int] | None = None
    last_on: date | None = None  # the latest date of a step recorded

    @property
    def codes(self) -> list[str]:
        return CODES[self.policy]

    def stages(self) -> set[str]:
        """The stages the contract's read may show now."""
        if self.final is not None:
            return {"final"}
        if self.prb_on is not None:
            return {"prb_recommended"}
        if self.hlr_requested or self.hlr_done:
            return {"higher_level_review", "response_closed"}
        if self.responded or self.waived:
            return {"response_closed"}
        if self.rated_on is not None:
            return {"initially_rated"}
        return {"monitoring"} if self.reviewed else {"planned"}


@dataclass
class Sent:
    path: str
    body: Any
    headers: dict[str, str]
    status: int
    content: bytes


class Model(RuleBasedStateMachine):
    """The write API against the reference model (module docstring)."""

    executives = Bundle("executives")
    boards = Bundle("boards")

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="ses-stateful-"))
        home = self.tmp / "home"
        KeyRing(home).init()
        self.ledger = LedgerApp(LedgerConfig(home=home, db_url=f"sqlite:///{self.tmp / 'l.db'}"))
        app = create_app(
            self.ledger, settings=ApiSettings(home=home, checkpoint_interval_seconds=0)
        )
        self.client = TestClient(app)
        self.client.__enter__()
        self.key = app.state.services.token_key
        self.head = 0
        self.ids = 0
        self.taken: set[str] = set()
        self.waivers: set[tuple[str, str]] = set()
        self.remembered: dict[tuple[str, str], Sent] = {}
        self.all_executives: list[Executive] = []
        self.all_appraisals: list[Appraisal] = []
        self.steps = 0
        self.counts: Counter[str] = Counter()

    def teardown(self) -> None:
        SEEN["runs"] += 1
        SEEN[f"run of {self.steps:02d} sends"] += 1
        try:
            if self.steps:
                self._check_teardown()
        finally:
            self.client.__exit__(None, None, None)
            self.ledger.close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _check_teardown(self) -> None:
        r = self.client.get("/v1/ledger/verify", headers=self.token("aud-1", ["auditor"], "*"))
        assert r.status_code == 200 and r.json()["ok"] is True, r.text
        models = self.client.app.state.services.read_models  # type: ignore[attr-defined]
        models.catch_up()
        live = models.digest()
        fresh = ReadModels(self.ledger)
        fresh.rebuild(jobs=1)
        assert fresh.digest() == live, "read models rebuilt from the log differ from the live ones"

    # -- plumbing ---------------------------------------------------------------------------

    def new_id(self, kind: str) -> str:
        self.ids += 1
        return f"{kind}{self.ids}"

    def token(self, subject: str, roles: list[str], agency: str) -> dict[str, str]:
        token = issue_token(self.key, subject=subject, roles=roles, agency=agency, ttl_seconds=3600)
        return {"Authorization": f"Bearer {token}"}

    def caller(
        self,
        data: st.DataObject,
        agency: str,
        roles: set[str],
        official: tuple[str, str] | None = None,
    ) -> tuple[dict[str, str], str, bool]:
        """A caller's headers, subject, and whether the contract lets it write here.

        `roles`: the roles that may write in the agency whoever they are; `official`: the
        (role, id) of the acting official the request names, who may write as itself.
        Each subject has one role and one agency, so a key scoped to it means one caller.
        """
        other = AGENCIES[1 - AGENCIES.index(agency)]
        good = ["own", "own", "star"] + (["official", "official"] if official else [])
        bad = ["other-agency", "auditor", "none"] + (["official-other"] if official else [])
        allowed = data.draw(st.integers(0, 5), label="bad caller") != 5
        who = data.draw(st.sampled_from(good if allowed else bad), label="caller")
        role = sorted(roles)[0]
        if who == "own":
            subject = f"{role}-{agency}"
            return self.token(subject, [role], agency), subject, True
        if who == "star":
            subject = f"{role}-star"
            return self.token(subject, [role], "*"), subject, True
        if who == "other-agency":
            subject = f"{role}-{other}"
            return self.token(subject, [role], other), subject, False
        if who == "auditor":
            subject = f"auditor-{agency}"
            return self.token(subject, ["auditor"], agency), subject, False
        if who == "none":
            return {}, "", False
        assert official is not None
        role, official_id = official
        subject = official_id if who == "official" else official_id + "x"
        return self.token(subject, [role], agency), subject, who == "official"

    def idempotency_key(self, data: st.DataObject) -> str | None:
        choice = data.draw(st.sampled_from([None, None, None, "k1", "k2"]), label="key")
        return None if choice is None else f"key-{choice}"

    def events_after(self, after: int) -> list[dict[str, Any]]:
        r = self.client.get(
            "/v1/ledger/events",
            params={"after": after, "limit": 1000},
            headers=self.token("aud-1", ["auditor"], "*"),
        )
        assert r.status_code == 200, r.text
        events: list[dict[str, Any]] = r.json()["events"]
        return events

    def send(
        self,
        path: str,
        body: dict[str, Any],
        headers: dict[str, str],
        subject: str,
        may: bool,
        expected: set[Outcome],
        *,
        key: str | None = None,
        if_match: int | None = None,
        stream: tuple[str, int] | None = None,
    ) -> bool:
        """POST; hold the answer to the model's `expected` outcomes (given a caller that
        may write and no key used before) and to the ledger invariants. Whether the request
        wrote a new entry (the model then records the step)."""
        self.steps += 1
        SEEN["sends"] += 1
        headers = dict(headers)
        if key is not None:
            headers["Idempotency-Key"] = key
        if if_match is not None:
            headers["If-Match"] = str(if_match)
        if not may:
            expected = {refused(401, "unauthorized") if not subject else refused(403, "forbidden")}
        before = self.remembered.get((subject, key)) if key is not None and may else None
        if before is not None:
            if before.path == path and before.body == body:
                expected = {(before.status, "replay", None)}
            else:  # another request: reused, unless refused before the key is looked at
                early = {"unknown-reference", "not-found"}
                expected = {refused(422, "idempotency-key-reused")} | {
                    o for o in expected if o[1] in early
                }
        r = self.client.post(path, json=body, headers=headers)
        where = f"POST {path} {body} as {subject or 'nobody'} -> {r.status_code} {r.text[:400]}"
        moved = self.events_after(self.head)
        if before is not None and before.path == path and before.body == body:
            assert r.status_code == before.status and r.content == before.content, (
                "a retry with the same key and body did not answer the first response",
                where,
            )
            assert moved == [], ("a retry appended", where, moved)
            return False
        got = self._outcome(r)
        SEEN[f"{path.rsplit('/', 1)[1]}: {got[0]} {got[2] or got[1] or ''}".strip()] += 1
        assert any(self._matches(got, e) for e in expected), (
            f"model expected {sorted(map(str, expected))}",
            where,
        )
        if r.status_code >= 400:
            assert moved == [], ("a refused request appended", where, moved)
            return False
        assert len(moved) == 1, ("a write appended other than one entry", where, moved)
        entry = moved[0]
        assert r.json()["event"]["hash"] == entry["hash"], where
        if stream is not None:
            assert (entry["stream_id"], entry["stream_version"]) == stream, (where, stream)
        self.head = entry["position"]
        if key is not None:
            self.remembered[(subject, key)] = Sent(path, body, headers, r.status_code, r.content)
        return True

    @staticmethod
    def _outcome(r: Any) -> tuple[int, str | None, str | None]:
        if r.status_code < 400:
            return r.status_code, None, None
        problem = r.json()
        assert problem["type"].startswith(URN), r.text
        return r.status_code, problem["type"][len(URN) :], problem.get("rule")

    @staticmethod
    def _matches(got: tuple[int, str | None, str | None], want: Outcome) -> bool:
        status, slug, rule_id = got
        if (status, slug) != want[:2]:
            return False
        return want[2] is None or rule_id in want[2]

    def check_appraisal(self, a: Appraisal) -> None:
        r = self.client.get(
            f"/v1/appraisals/{a.appraisal_id}", headers=self.token("aud-1", ["auditor"], "*")
        )
        assert r.status_code == 200, r.text
        got = r.json()
        where = (a, got)
        assert got["version"] == a.version, where
        assert got["stage"] in a.stages(), where
        assert got["policy"] == a.policy, where
        if a.rated_on is None:
            assert got["initial_rating"] is None, where
        else:
            initial = got["initial_rating"]
            assert initial["score"] == a.score and initial["summary_level"] == a.level, where
            assert initial["rated_on"] == _d(a.rated_on), where
            assert initial["element_levels"] == a.levels, where
        if a.final is None:
            assert got["final_rating"] is None, where
        else:
            assert got["final_rating"]["level"] == a.final[1], where
            assert got["final_rating"]["rated_on"] == _d(a.final[0]), where

    def check_executive(self, e: Executive) -> None:
        auditor = self.token("aud-1", ["auditor"], "*")
        r = self.client.get(f"/v1/executives/{e.executive_id}", headers=auditor)
        assert r.status_code == 200, r.text
        got = r.json()
        assert got["version"] == e.version, (e, got)
        current = got["current_rating"]
        if not e.finals:
            assert current is None, (e, got)
        else:
            latest = max(a.end for a, _, _ in e.finals)
            allowed = [
                {
                    "appraisal_id": a.appraisal_id,
                    "level": level,
                    "score": a.score,
                    "rated_on": _d(day),
                    "policy": a.policy,
                }
                for a, day, level in e.finals
                if a.end == latest
            ]
            shown = {k: current[k] for k in allowed[0]}  # the contract's fields (more may come)
            assert shown in allowed, ("current rating: the later period's final", current, e)
        r = self.client.get(f"/v1/executives/{e.executive_id}/ratings", headers=auditor)
        assert r.status_code == 200, r.text
        ratings = r.json()["ratings"]
        want = sorted((a.appraisal_id, lv, a.score, _d(day)) for a, day, lv in e.finals)
        assert (
            sorted((x["appraisal_id"], x["level"], x["score"], x["rated_on"]) for x in ratings)
            == want
        )

    def _taken_id(self, data: st.DataObject, kind: str) -> tuple[str, bool]:
        """A new id, or now and then one already taken (409, one set of ids)."""
        if self.taken and data.draw(st.integers(0, 9), label="reuse id") == 9:
            return data.draw(st.sampled_from(sorted(self.taken)), label="taken id"), True
        return self.new_id(kind), False

    # -- records ----------------------------------------------------------------------------

    @initialize(target=executives)
    def first_executives(self) -> Any:
        """A career executive in each agency, a noncareer one at DOE, and a board of five
        (three career) in each agency: the scene most sequences play on."""
        made = []
        for executive_id, agency, kind in (
            ("E-DOE-1", "DOE", "career"),
            ("E-DOT-1", "DOT", "career"),
            ("E-DOE-2", "DOE", "noncareer"),
        ):
            body = story.executive(executive_id, agency, appointment_type=kind)
            subject = f"hr_app-{agency}"
            headers = self.token(subject, ["hr_app"], agency)
            assert self.send("/v1/executives", body, headers, subject, True, {CREATED})
            self.taken.add(executive_id)
            made.append(Executive(executive_id, agency, kind == "career", False))
        self.all_executives += made
        return multiple(*made)

    @initialize(target=boards)
    def first_boards(self) -> Any:
        made = []
        for agency in AGENCIES:
            members = {"M1": True, "M2": True, "M3": True, "M4": False, "M5": False}
            body = {
                "board_id": f"PRB-{agency}",
                "agency": agency,
                "federal_register_published_on": "2020-06-01",
                "members": [
                    {"member_id": m, "name": f"Member {m}", "career": c} for m, c in members.items()
                ],
            }
            subject = f"admin-{agency}"
            headers = self.token(subject, ["admin"], agency)
            assert self.send("/v1/review-boards", body, headers, subject, True, {CREATED})
            self.taken.add(f"PRB-{agency}")
            made.append(Board(f"PRB-{agency}", agency, date(2020, 6, 1), members))
        return multiple(*made)

    @precondition(lambda self: self.counts["executives"] < 4)
    @rule(target=executives, data=st.data())
    def register_executive(self, data: st.DataObject) -> Any:
        self.counts["executives"] += 1
        agency = data.draw(st.sampled_from(AGENCIES), label="agency")
        kind = data.draw(st.sampled_from(["career", "career", "noncareer", "limited_term"]))
        probationary = data.draw(st.booleans(), label="probationary")
        executive_id, taken = self._taken_id(data, "E")
        body = story.executive(
            executive_id, agency, appointment_type=kind, probationary=probationary
        )
        role = data.draw(st.sampled_from(["hr_app", "admin"]), label="role")
        headers, subject, may = self.caller(data, agency, {role})
        expected = {refused(409, "already-exists") if taken else CREATED}
        key = self.idempotency_key(data)
        if self.send("/v1/executives", body, headers, subject, may, expected, key=key):
            self.taken.add(executive_id)
            e = Executive(executive_id, agency, kind == "career", probationary)
            self.all_executives.append(e)
            self.check_executive(e)
            return e
        return multiple()

    @precondition(lambda self: self.counts["boards"] < 2)
    @rule(target=boards, data=st.data())
    def register_board(self, data: st.DataObject) -> Any:
        self.counts["boards"] += 1
        agency = data.draw(st.sampled_from(AGENCIES), label="agency")
        size = data.draw(st.sampled_from([2, 3, 3, 4, 5]), label="size")
        members = {f"M{i}": data.draw(st.booleans(), label="career") for i in range(1, size + 1)}
        own = [e for e in self.all_executives if e.agency == agency]
        if bool(own) and data.draw(st.booleans(), label="an executive sits"):
            members[data.draw(st.sampled_from(own)).executive_id] = True  # PRB-3
        published = data.draw(st.sampled_from([date(2020, 6, 1), date(2024, 12, 1)]))
        board_id, taken = self._taken_id(data, "PRB")
        body = {
            "board_id": board_id,
            "agency": agency,
            "federal_register_published_on": _d(published),
            "members": [
                {"member_id": m, "name": f"Member {m}", "career": c} for m, c in members.items()
            ],
        }
        headers, subject, may = self.caller(data, agency, {"admin"})
        expected = set()
        if taken:
            expected.add(refused(409, "already-exists"))
        if len(members) < 3:  # PRB-1: at least 3 members on the board
            expected.add(rule_violation("PRB-1"))
        expected = expected or {CREATED}
        key = self.idempotency_key(data)
        if self.send("/v1/review-boards", body, headers, subject, may, expected, key=key):
            self.taken.add(board_id)
            return Board(board_id, agency, published, members)
        return multiple()

    @precondition(lambda self: self.counts["waivers"] < 2)
    @rule(data=st.data())
    def grant_waiver(self, data: st.DataObject) -> None:
        self.counts["waivers"] += 1
        agency = data.draw(st.sampled_from(AGENCIES), label="agency")
        cycle = data.draw(st.sampled_from(["FY2025", "FY2026"]), label="cycle")
        body = {
            "agency": agency,
            "cycle": cycle,
            "granted_on": "2026-09-01",
            "reference": "Presidential memorandum",
        }
        headers, subject, may = self.caller(data, agency, {"admin"})
        expected = {refused(409, "already-exists") if (agency, cycle) in self.waivers else CREATED}
        key = self.idempotency_key(data)
        if self.send("/v1/rating-cap-waivers", body, headers, subject, may, expected, key=key):
            self.waivers.add((agency, cycle))

    @rule(executive=executives, data=st.data())
    def set_plan(self, executive: Executive, data: st.DataObject) -> None:
        fy = data.draw(st.sampled_from([2021, 2024, 2025, 2026]), label="fy")
        start = date(fy - 1, 10, 1)
        shape = data.draw(st.sampled_from(["year"] * 6 + ["half", "calendar", "long"]))
        if shape == "half":
            start, end = date(fy, 1, 1), date(fy, 9, 30)
        elif shape == "calendar":  # a full year across two fiscal years
            start, end = date(fy, 1, 1), date(fy, 12, 31)
        elif shape == "long":
            end = start + timedelta(days=400)
        else:
            end = date(fy, 9, 30)
        communicated = start + timedelta(days=data.draw(st.sampled_from([0, 0, -10, 10, 45])))
        policy = "ses-2025" if start >= POLICY_2025_FROM else "ses-basic-2012"
        if data.draw(st.integers(0, 9), label="other policy") == 9:
            policy = "ses-basic-2012" if policy == "ses-2025" else "ses-2025"
        codes = CODES[policy]
        others = [
            data.draw(st.integers(0, 30), label="weight")
            if data.draw(st.integers(0, 9)) == 9
            else data.draw(st.sampled_from([15, 15, 16, 20]))
            for _ in codes[1:]
        ]
        elements = [(codes[0], 100 - sum(others)), *zip(codes[1:], others, strict=True)]
        if elements[0][1] < 0 or elements[0][1] > 100:
            elements[0] = (codes[0], 40)
        mutation = data.draw(st.sampled_from(["none"] * 12 + ["plus", "drop", "foreign"]))
        if mutation == "plus":
            elements[1] = (elements[1][0], elements[1][1] + 1)
        elif mutation == "drop":
            elements = elements[:-1]
        elif mutation == "foreign":
            other = CODES["ses-2025" if policy == "ses-basic-2012" else "ses-basic-2012"]
            elements[-1] = (other[-1], elements[-1][1])
        appraisal_id, taken = self._taken_id(data, "A")
        known = data.draw(st.integers(0, 14), label="unknown executive") != 14
        executive_id = executive.executive_id if known else "NOBODY"
        body = {
            "appraisal_id": appraisal_id,
            "executive_id": executive_id,
            "policy": policy,
            "period_start": _d(start),
            "period_end": _d(end),
            "rating_official_id": "R1",
            "communicated_on": _d(communicated),
            "elements": [
                {"code": c, "weight": w, "requirements": [f"Requirement of {c}."]}
                for c, w in elements
            ],
        }
        broken = weight_violations(policy, elements)
        if start >= POLICY_2025_FROM and policy != "ses-2025":
            broken.add("POL-1")
        if end <= start or end > _add_year(start):
            broken.add("PER-1")
        if policy == "ses-2025" and _fiscal_year(start) != _fiscal_year(end):
            broken.add("PER-1")
        headers, subject, may = self.caller(
            data, executive.agency, {"hr_app"}, ("rating_official", "R1")
        )
        expected: set[Outcome] = set()
        if taken:
            expected.add(refused(409, "already-exists"))
        if broken:
            expected.add(rule_violation(*broken))
        if not known:
            expected = {refused(422, "unknown-reference")}
            if not may:  # who may write there cannot be known: either answer
                expected.add(
                    refused(401, "unauthorized") if not subject else refused(403, "forbidden")
                )
                may = True
        expected = expected or {CREATED}
        key = self.idempotency_key(data)
        wrote = self.send(
            "/v1/appraisals",
            body,
            headers,
            subject,
            may,
            expected,
            key=key,
            stream=(appraisal_id, 1),
        )
        if not wrote:
            return
        self.taken.add(appraisal_id)
        a = Appraisal(appraisal_id, executive, policy, start, end, communicated, dict(elements))
        a.last_on = communicated
        self.check_appraisal(a)
        self.all_appraisals.append(a)

    # -- appraisal steps --------------------------------------------------------------------

    def step(
        self,
        data: st.DataObject,
        a: Appraisal,
        name: str,
        body: dict[str, Any],
        roles: set[str],
        official: tuple[str, str] | None,
        expected: set[Outcome],
        on: date,
    ) -> bool:
        """Send an appraisal step: `expected` as the model sees it for an allowed caller.
        A step dated before the appraisal's latest step (the plan: its communication) is
        out of order (SEQ-1) as well as whatever else it breaks. Whether it was recorded
        (the model's version then moves)."""
        if a.last_on is not None and on < a.last_on:
            expected = expected | {rule_violation("SEQ-1")}
        headers, subject, may = self.caller(data, a.executive.agency, roles, official)
        if_match = None
        if data.draw(st.integers(0, 7), label="if-match") == 7:
            if_match = a.version + data.draw(st.sampled_from([-1, 0, 1]), label="off by")
            if if_match != a.version:  # stale, unless refused before the version is read
                early = {"unknown-reference", "not-found"}
                expected = {refused(412, "stale-version")} | {o for o in expected if o[1] in early}
        key = None if if_match is not None else self.idempotency_key(data)
        path = f"/v1/appraisals/{a.appraisal_id}/{name}"
        wrote = self.send(
            path,
            body,
            headers,
            subject,
            may,
            expected,
            key=key,
            if_match=if_match,
            stream=(a.appraisal_id, a.version + 1),
        )
        if wrote:
            a.version += 1
            a.last_on = max(on, a.last_on or on)
        return wrote

    def pick(self, data: st.DataObject, ready: Any) -> Appraisal:
        """An appraisal, mostly one the step suits (`ready(a)`), now and then any."""
        suited = [a for a in self.all_appraisals if ready(a)]
        if suited and data.draw(st.integers(0, 4), label="any appraisal") != 4:
            return data.draw(st.sampled_from(suited), label="appraisal")
        return data.draw(st.sampled_from(self.all_appraisals), label="appraisal")

    @precondition(lambda self: bool(self.all_appraisals))
    @rule(data=st.data())
    def progress_review(self, data: st.DataObject) -> None:
        a = self.pick(data, lambda a: a.rated_on is None)
        day = a.start + timedelta(days=data.draw(st.integers(0, 60), label="day"))
        body = {"reviewed_on": _d(day), "reviewer_id": "R1", "notes": "Quarterly review."}
        # SEQ-1: reviews come before the initial rating
        expected = {rule_violation("SEQ-1")} if a.rated_on is not None else {CREATED}
        roles, official = {"hr_app"}, ("rating_official", "R1")
        if self.step(data, a, "progress-reviews", body, roles, official, expected, day):
            a.reviewed = True
            self.check_appraisal(a)

    @precondition(lambda self: bool(self.all_appraisals))
    @rule(data=st.data())
    def initial_rating(self, data: st.DataObject) -> None:
        a = self.pick(data, lambda a: a.rated_on is None)
        base = max(a.start, a.communicated)
        near = [base + timedelta(days=n) for n in (89, 90, 200)] + [a.end + timedelta(days=15)]
        near += [i + timedelta(days=n) for i in INAUGURATIONS[1:3] for n in (119, 120)]
        rated_on = data.draw(st.sampled_from(near), label="rated_on")
        levels = {c: data.draw(st.sampled_from([1, 2, 3, 3, 4, 4, 5, 5]), label=c) for c in a.codes}
        if data.draw(st.integers(0, 9), label="bad level") == 9:
            levels[a.codes[2]] = data.draw(st.sampled_from([0, 6]))
        narrative = "Written rating." if data.draw(st.integers(0, 9)) != 9 else "   "
        shared_on = rated_on + timedelta(days=data.draw(st.sampled_from([0, 0, 2])))
        body: dict[str, Any] = {
            "rated_on": _d(rated_on),
            "rating_official_id": "R1",
            "element_levels": levels,
            "narrative": narrative,
        }
        if shared_on != rated_on or data.draw(st.booleans()):
            body["shared_on"] = _d(shared_on)
        broken = set()
        if rated_on < base + timedelta(days=90):
            broken.add("PER-2")
        if a.executive.career and _per_3(rated_on):
            broken.add("PER-3")
        if any(v not in POINTS for v in levels.values()):
            broken.add("RAT-1")
        if not narrative.strip():
            broken.add("RAT-4")
        if a.rated_on is not None:
            broken.add("SEQ-1")  # one initial rating
        expected = {rule_violation(*broken)} if broken else {CREATED}
        roles, official = {"hr_app"}, ("rating_official", "R1")
        if self.step(data, a, "initial-rating", body, roles, official, expected, rated_on):
            a.rated_on, a.shared_on, a.levels = rated_on, shared_on, levels
            a.score, a.level = summary_level(levels, a.weights)
            self.check_appraisal(a)

    @precondition(lambda self: bool(self.all_appraisals))
    @rule(data=st.data())
    def respond(self, data: st.DataObject) -> None:
        """The executive's response, waiver or request for higher-level review (RAT-5,
        RAT-6): after the initial rating, before the PRB."""
        a = self.pick(data, lambda a: a.rated_on is not None and a.prb_on is None)
        name = data.draw(
            st.sampled_from(
                ["executive-response", "response-waiver", "higher-level-review-request"]
            )
        )
        day = (a.shared_on or a.end) + timedelta(days=data.draw(st.integers(0, 5), label="day"))
        text = "I disagree with two elements." if data.draw(st.integers(0, 9)) != 9 else " "
        body = {
            "executive-response": {"submitted_on": _d(day), "text": text},
            "response-waiver": {"waived_on": _d(day)},
            "higher-level-review-request": {"requested_on": _d(day)},
        }[name]
        its_rule = "RAT-6" if name == "higher-level-review-request" else "RAT-5"
        broken = set()
        if a.rated_on is None or a.prb_on is not None:  # a rating the PRB has not considered
            broken |= {"SEQ-1", its_rule}
        if name == "executive-response" and not text.strip():
            broken.add("RAT-5")  # in writing
        expected = {rule_violation(*broken)} if broken else {CREATED}
        # rules.md does not say whether a second response, a response after a waiver, or a
        # second request is taken: either
        repeated = {
            "executive-response": a.responded or a.waived,
            "response-waiver": a.responded or a.waived,
            "higher-level-review-request": a.hlr_requested,
        }[name]
        if repeated:
            expected.add(rule_violation("SEQ-1", its_rule))
        roles = {"hr_app"}
        official = ("executive", a.executive.executive_id)
        if self.step(data, a, name, body, roles, official, expected, day):
            a.responded |= name == "executive-response"
            a.waived |= name == "response-waiver"
            a.hlr_requested |= name == "higher-level-review-request"
            self.check_appraisal(a)

    @precondition(lambda self: bool(self.all_appraisals))
    @rule(data=st.data())
    def higher_level_review(self, data: st.DataObject) -> None:
        a = self.pick(data, lambda a: a.hlr_requested and a.prb_on is None)
        day = (a.shared_on or a.end) + timedelta(days=data.draw(st.integers(6, 7), label="day"))
        level = data.draw(st.sampled_from([1, 2, 3, 4, 5, 5, 0]), label="level")
        body = {
            "reviewer_id": "H1",
            "reviewed_on": _d(day),
            "recommended_level": level,
            "rationale": "The record supports the rating.",
        }
        broken = set()
        if not a.hlr_requested or a.prb_on is not None:
            broken |= {"SEQ-1", "RAT-6"}
        if level not in POINTS:
            broken.add("RAT-1")
        expected = {rule_violation(*broken)} if broken else {CREATED}
        if a.hlr_done:  # a second review: rules.md does not say
            expected.add(rule_violation("SEQ-1", "RAT-6"))
        roles, official = {"hr_app"}, ("hlr_official", "H1")
        if self.step(data, a, "higher-level-review", body, roles, official, expected, day):
            a.hlr_done = True
            self.check_appraisal(a)

    @precondition(lambda self: bool(self.all_appraisals))
    @rule(board=boards, data=st.data())
    def prb_recommendation(self, board: Board, data: st.DataObject) -> None:
        a = self.pick(
            data,
            lambda a: (
                a.rated_on is not None and a.prb_on is None and a.executive.agency == board.agency
            ),
        )
        offset = data.draw(st.sampled_from([8, 9, 10, 11, 30]), label="offset")
        day = (a.shared_on or a.end) + timedelta(days=offset)
        members = sorted(board.members)
        present = data.draw(
            st.lists(st.sampled_from(members), min_size=3, max_size=len(members), unique=True)
            if data.draw(st.integers(0, 7), label="two present") != 7
            else st.lists(st.sampled_from(members), min_size=2, max_size=2, unique=True),
            label="present",
        )
        considered = ["initial_rating"]
        if a.responded:
            considered.append("executive_response")
        if a.hlr_done:
            considered.append("higher_level_review")
        forgot = data.draw(st.integers(0, 7), label="forget") == 7 and len(considered) > 1
        if forgot:
            considered.pop(data.draw(st.integers(0, len(considered) - 1)))
        body = {
            "board_id": board.board_id,
            "members_present": present,
            "recommended_on": _d(day),
            "recommended_level": data.draw(st.integers(1, 5), label="level"),
            "rationale": "The board concurs.",
            "considered": considered,
        }
        broken = set()
        if a.rated_on is None or a.prb_on is not None:
            broken.add("SEQ-1")
        if a.rated_on is not None and not (a.responded or a.waived):
            assert a.shared_on is not None
            if day < a.shared_on + timedelta(days=RESPONSE_WINDOW):
                broken.add("RAT-7")
        if len(present) < 3:
            broken.add("PRB-1")
        if a.executive.career and 2 * sum(board.members[m] for m in present) <= len(present):
            broken.add("PRB-2")
        if a.executive.executive_id in present:
            broken.add("PRB-3")
        if day < board.published_on:
            broken.add("PRB-4")
        if forgot:
            broken.add("PRB-5")
        if a.final is not None:
            broken.add("RAT-8")
        expected = {rule_violation(*broken)} if broken else {CREATED}
        if a.hlr_requested and not a.hlr_done and a.prb_on is None:
            # a review requested, not yet made: rules.md does not say the PRB waits
            expected.add(rule_violation("SEQ-1", "RAT-6"))
        if board.agency != a.executive.agency:
            # another agency's board: an id the token may not know of; a `*` token hears
            # the rule (docs/api.md, Errors): either
            expected = {refused(422, "unknown-reference"), rule_violation()}
        roles, official = {"hr_app"}, ("prb_member", present[0])
        if self.step(data, a, "prb-recommendation", body, roles, official, expected, day):
            a.prb_on = day
            self.check_appraisal(a)

    @precondition(lambda self: bool(self.all_appraisals))
    @rule(data=st.data())
    def final_rating(self, data: st.DataObject) -> None:
        a = self.pick(data, lambda a: a.prb_on is not None and a.final is None)
        anchor = a.prb_on or (a.shared_on or a.end) + timedelta(days=15)
        day = anchor + timedelta(days=data.draw(st.sampled_from([0, 1, 20]), label="day"))
        level = data.draw(st.sampled_from([1, 2, 3, 4, 5, 0]), label="level")
        body = {"appointing_authority_id": "AA1", "rated_on": _d(day), "level": level}
        broken = set()
        if a.prb_on is None:
            broken.add("RAT-8")
            broken.add("SEQ-1")
        if a.final is not None:
            broken.add("SEQ-1")
        if a.executive.career and _per_3(day):
            broken.add("PER-3")
        if level not in POINTS:
            broken.add("RAT-1")
        expected = {rule_violation(*broken)} if broken else {CREATED}
        roles, official = {"hr_app"}, ("appointing_authority", "AA1")
        if self.step(data, a, "final-rating", body, roles, official, expected, day):
            a.final = (day, level)
            a.executive.finals.append((a, day, level))
            self.check_appraisal(a)
            self.check_executive(a.executive)

    @precondition(lambda self: self.counts["unknown"] < 1)
    @rule(data=st.data())
    def unknown_appraisal(self, data: st.DataObject) -> None:
        self.counts["unknown"] += 1
        body = {"reviewed_on": "2024-01-05", "reviewer_id": "R1", "notes": "Review."}
        headers = self.token("hr_app-DOE", ["hr_app"], "DOE")
        self.send(
            "/v1/appraisals/NO-SUCH/progress-reviews",
            body,
            headers,
            "hr_app-DOE",
            True,
            {refused(404, "not-found")},
        )

    # -- executive records ------------------------------------------------------------------

    @precondition(lambda self: self.counts["actions"] < 5)
    @rule(executive=executives, data=st.data())
    def personnel_action(self, executive: Executive, data: st.DataObject) -> None:
        self.counts["actions"] += 1
        action = data.draw(st.sampled_from(["removal", "removal", "reassignment", "transfer"]))
        notice = date(2025, 3, 3) + timedelta(days=data.draw(st.integers(0, 300), label="n"))
        lead = data.draw(st.sampled_from([29, 30, 31, 60]), label="lead")
        effective = notice + timedelta(days=lead)
        hearing = data.draw(st.sampled_from([None, None, 14, 15, 16]), label="hearing")
        subpart = data.draw(st.sampled_from(["E", "E", "D"]), label="subpart")
        finals = [a.appraisal_id for a, _, _ in executive.finals]
        basis = finals[-1:] if data.draw(st.booleans(), label="with basis") else []
        others = [
            a.appraisal_id
            for e in self.all_executives
            if e is not executive
            for a, _, _ in e.finals
        ]
        foreign = bool(others) and data.draw(st.integers(0, 7), label="foreign") == 7
        if foreign:
            basis = [others[0]]
        body = {
            "action": action,
            "basis_appraisal_ids": basis,
            "notice_on": _d(notice),
            "effective_on": _d(effective),
            "authority": f"5 CFR 359 subpart {subpart}",
            "hearing_requested_on": None
            if hearing is None
            else _d(effective - timedelta(days=hearing)),
        }
        broken = set()
        if action == "removal" and lead < 30:
            broken.add("REM-5")
        if action == "removal" and executive.career:
            if subpart != ("D" if executive.probationary else "E"):
                broken.add("REM-4")
        if hearing is not None:
            hearing_ok = action == "removal" and executive.career and not executive.probationary
            if not hearing_ok or hearing < 15 or subpart != "E":
                broken.add("REM-7")
        expected = {rule_violation(*broken)} if broken else {CREATED}
        if hearing is not None and effective - timedelta(days=hearing) < notice:
            expected = {rule_violation("REM-7", *broken)}  # a request before the notice
            if not broken:
                expected.add(CREATED)
        if foreign:
            expected = {refused(422, "unknown-reference")}
        headers, subject, may = self.caller(
            data, executive.agency, {"hr_app"}, ("appointing_authority", "AA1")
        )
        if subject == "AA1x":  # any appointing authority of the agency may
            may = True
        path = f"/v1/executives/{executive.executive_id}/personnel-actions"
        key = self.idempotency_key(data)
        stream = (executive.executive_id, executive.version + 1)
        if self.send(path, body, headers, subject, may, expected, key=key, stream=stream):
            executive.version += 1
            self.check_executive(executive)

    @precondition(lambda self: self.counts["complaints"] < 3)
    @rule(executive=executives, data=st.data())
    def complaint(self, executive: Executive, data: st.DataObject) -> None:
        """APP-1: complaints are recorded as events at any time, never as rating changes."""
        self.counts["complaints"] += 1
        body = {
            "forum": data.draw(st.sampled_from(["EEOC", "OSC"])),
            "filed_on": _d(date(2024, 1, 1) + timedelta(days=data.draw(st.integers(0, 900)))),
            "summary": "Complaint about the process.",
        }
        headers, subject, may = self.caller(
            data, executive.agency, {"hr_app"}, ("executive", executive.executive_id)
        )
        path = f"/v1/executives/{executive.executive_id}/complaints"
        key = self.idempotency_key(data)
        stream = (executive.executive_id, executive.version + 1)
        if self.send(path, body, headers, subject, may, {CREATED}, key=key, stream=stream):
            executive.version += 1
            self.check_executive(executive)

    @precondition(lambda self: not self.all_appraisals)
    @rule()
    def read_back(self) -> None:
        """Every record the model holds reads as the model says (also the one rule always
        runnable, once the registrations have run out)."""
        for e in self.all_executives:
            self.check_executive(e)
        for a in self.all_appraisals:
            self.check_appraisal(a)

    # -- retries ----------------------------------------------------------------------------

    @precondition(lambda self: bool(self.remembered))
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        """The same request with its key: the first answer, byte for byte, nothing new."""
        sent = self.remembered[data.draw(st.sampled_from(sorted(self.remembered)), label="sent")]
        self.steps += 1
        r = self.client.post(sent.path, json=sent.body, headers=sent.headers)
        assert r.status_code == sent.status and r.content == sent.content, (sent, r.text)
        assert self.events_after(self.head) == [], "a retry appended"


def test_the_write_api_follows_the_reference_model() -> None:
    run_state_machine_as_test(
        Model,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            derandomize=not os.environ.get("SES_STATEFUL_RANDOM"),
            suppress_health_check=list(HealthCheck),
            database=None,
            phases=[Phase.explicit, Phase.reuse, Phase.generate]
            + ([Phase.shrink] if os.environ.get("SES_STATEFUL_SHRINK") else []),
        ),
    )
    if os.environ.get("SES_STATEFUL_STATS"):
        for name, count in sorted(SEEN.items()):
            print(f"{count:6d}  {name}")
