"""Schemathesis fuzzing of the OpenAPI schema, bounded to stay well under a minute.

Every generated request (valid and deliberately invalid) must get a non-5xx answer, and a
refused one (4xx) must leave the ledger exactly as it was.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode

from api.auth import issue_token
from api.main import create_app
from api.settings import ApiSettings
from ledger.application import LedgerApp
from ledger.config import LedgerConfig
from ledger.keys import KeyRing
from tests.api.story import Api

EXAMPLES = 25


def _build_app() -> Any:
    """The app under test, made at import: schemathesis reads its schema at collection."""
    tmp = Path(tempfile.mkdtemp(prefix="ses-ledger-fuzz-"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)  # also when the test is not run
    home = tmp / "home"
    KeyRing(home).init()
    ledger = LedgerApp(LedgerConfig(home=home, db_url=f"sqlite:///{tmp / 'ledger.db'}"))
    return create_app(ledger, settings=ApiSettings(home=home, checkpoint_interval_seconds=0))


APP = _build_app()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=EXAMPLES,
    deterministic=True,
)


@pytest.fixture(scope="module")
def fuzz_app() -> Iterator[Any]:
    with TestClient(APP) as client:  # a little history for generated ids to land on
        Api(client, APP.state.services.token_key).appraisal("final")
    yield APP
    APP.state.services.ledger.close()


def _events(app: Any) -> int:
    top: int | None = app.state.services.ledger.recorder.max_notification_id()
    return top or 0


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_input_gives_a_5xx_or_appends_on_refusal(case: Any, fuzz_app: Any) -> None:
    key = fuzz_app.state.services.token_key
    token = issue_token(
        key, subject="fuzz-1", roles=["admin", "hr_app"], agency="*", ttl_seconds=3600
    )
    headers = dict(case.headers or {})
    headers["Authorization"] = f"Bearer {token}"  # token handling is tested in test_auth
    before = _events(fuzz_app)
    response = case.call(headers=headers)
    assert response.status_code < 500, (case.method, case.formatted_path, response.text)
    if response.status_code >= 400:
        assert response.headers["content-type"][0].startswith("application/problem+json")
        assert _events(fuzz_app) == before, "a refused request appended to the ledger"
