"""The OpenAPI document describes the read bodies as they are (api-contract.md, Reads).

Read bodies are rendered from stored JSON, not through a response model, so nothing but
this test keeps `api.schemas.reads` true: each read's body must validate against its
documented model in strict mode (types exactly as documented), and carry no field the
model leaves out, on a history where every optional part is present and one where it is
absent.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from api.schemas import reads as r
from api.schemas import responses as rs
from tests.api import story as s
from tests.api.story import Api

READS: list[tuple[str, type[BaseModel]]] = [
    ("/v1/executives/{executive_id}", r.ExecutiveOut),
    ("/v1/executives/{executive_id}/ratings", r.RatingsOut),
    ("/v1/executives/{executive_id}/removal-history", r.RemovalHistoryOut),
    ("/v1/executives/{executive_id}/evidence-bundle", r.EvidenceBundleOut),
    ("/v1/appraisals/{appraisal_id}", r.AppraisalOut),
    ("/v1/appraisals/{appraisal_id}/events", r.AppraisalEventsOut),
    ("/v1/reports/below-fully-successful", r.BelowFullySuccessfulOut),
    ("/v1/reports/rating-distribution", r.DistributionOut),
    ("/v1/reports/compliance", r.ComplianceOut),
    ("/v1/reports/audit-trail", r.AuditTrailOut),
]


def undocumented(value: Any, path: str = "") -> list[str]:
    """Fields a validated body holds that its model does not declare (`extra="allow"`)."""
    if isinstance(value, BaseModel):
        found = [f"{path}.{name}" for name in value.model_extra or {}]
        for name in type(value).model_fields:
            found += undocumented(getattr(value, name), f"{path}.{name}")
        return found
    if isinstance(value, list):
        return [x for item in value for x in undocumented(item, f"{path}[]")]
    if isinstance(value, dict):
        return [x for key, item in value.items() for x in undocumented(item, f"{path}.{key}")]
    return []


def check(api: Api, path: str, model: type[BaseModel], **params: Any) -> BaseModel:
    response = api.get(path, **params)
    assert response.status_code == 200, response.text
    body = model.model_validate_json(response.content, strict=True)
    assert undocumented(body) == [], (path, undocumented(body))
    return body


@pytest.mark.parametrize(("path", "model"), READS, ids=[p for p, _m in READS])
def test_openapi_documents_each_read_with_its_model(
    shared_api: Api, path: str, model: type[BaseModel]
) -> None:
    spec = shared_api.client.get("/openapi.json").json()
    schema = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
    assert schema["schema"] == {"$ref": f"#/components/schemas/{model.__name__}"}
    documented = spec["components"]["schemas"][model.__name__]
    assert set(documented["properties"]) == set(model.model_fields)
    assert set(documented["required"]) == set(model.model_fields)


def test_every_read_body_is_as_documented_when_everything_is_there(shared_api: Api) -> None:
    api = shared_api
    low = api.appraisal("final", fy=2023, level=1)
    executive_id = low.executive_id
    api.appraisal("final", executive_id=executive_id, fy=2024, level=2)
    api.ok(
        f"/v1/executives/{executive_id}/personnel-actions",
        s.personnel_action("reassignment", basis=[low.appraisal_id]),
    )
    on = {"executive_id": executive_id, "appraisal_id": low.appraisal_id}
    executive = check(api, "/v1/executives/{executive_id}".format(**on), r.ExecutiveOut)
    assert isinstance(executive, r.ExecutiveOut) and executive.current_rating is not None
    ratings = check(api, "/v1/executives/{executive_id}/ratings".format(**on), r.RatingsOut)
    assert isinstance(ratings, r.RatingsOut) and len(ratings.ratings) == 2
    history = check(
        api,
        "/v1/executives/{executive_id}/removal-history".format(**on),
        r.RemovalHistoryOut,
        as_of="2025-06-01",
    )
    assert isinstance(history, r.RemovalHistoryOut)
    assert history.three_year.removal_required and history.actions
    check(api, "/v1/executives/{executive_id}/evidence-bundle".format(**on), r.EvidenceBundleOut)
    appraisal = check(api, "/v1/appraisals/{appraisal_id}".format(**on), r.AppraisalOut)
    assert isinstance(appraisal, r.AppraisalOut)
    assert appraisal.initial_rating is not None and appraisal.final_rating is not None
    check(api, "/v1/appraisals/{appraisal_id}/events".format(**on), r.AppraisalEventsOut)
    report = check(
        api, "/v1/reports/below-fully-successful", r.BelowFullySuccessfulOut, as_of="2025-06-01"
    )
    assert isinstance(report, r.BelowFullySuccessfulOut) and report.executives
    check(api, "/v1/reports/rating-distribution", r.DistributionOut, agency="DOE", cycle="FY2024")
    compliance = check(api, "/v1/reports/compliance", r.ComplianceOut, agency="DOE")
    assert isinstance(compliance, r.ComplianceOut) and compliance.findings
    trail = check(
        api, "/v1/reports/audit-trail", r.AuditTrailOut, executive_id=executive_id, limit=2
    )
    assert isinstance(trail, r.AuditTrailOut) and trail.next_after is not None


def test_every_read_body_is_as_documented_when_the_optional_parts_are_not(api: Api) -> None:
    """A fresh ledger: an executive never rated, a plan not yet rated, empty reports."""
    planned = api.appraisal("planned")
    on = {"executive_id": planned.executive_id, "appraisal_id": planned.appraisal_id}
    executive = check(api, "/v1/executives/{executive_id}".format(**on), r.ExecutiveOut)
    assert isinstance(executive, r.ExecutiveOut) and executive.current_rating is None
    appraisal = check(api, "/v1/appraisals/{appraisal_id}".format(**on), r.AppraisalOut)
    assert isinstance(appraisal, r.AppraisalOut)
    assert appraisal.initial_rating is None and appraisal.final_rating is None
    history = check(
        api, "/v1/executives/{executive_id}/removal-history".format(**on), r.RemovalHistoryOut
    )
    assert isinstance(history, r.RemovalHistoryOut) and history.three_year.triggered_on is None
    distribution = check(
        api, "/v1/reports/rating-distribution", r.DistributionOut, agency="DOE", cycle="FY2024"
    )
    assert isinstance(distribution, r.DistributionOut)
    check(api, "/v1/reports/below-fully-successful", r.BelowFullySuccessfulOut)
    trail = check(
        api, "/v1/reports/audit-trail", r.AuditTrailOut, executive_id=planned.executive_id
    )
    assert isinstance(trail, r.AuditTrailOut) and trail.next_after is None


LEDGER_BODIES: list[tuple[str, type[BaseModel], dict[str, Any]]] = [
    ("/v1/ledger/events", rs.EventsPage, {"limit": 2}),
    ("/v1/ledger/verify", rs.VerifyOut, {}),
    ("/v1/ledger/keys", rs.KeysOut, {}),
    ("/v1/ledger/proofs/inclusion", rs.InclusionProof, {"position": 1}),
    ("/v1/ledger/proofs/consistency", rs.ConsistencyProof, {"first": 1}),
    ("/v1/ledger/receipts/{position}", rs.ReceiptOut, {}),
    ("/healthz", rs.Health, {}),
]


@pytest.mark.parametrize(("path", "model", "params"), LEDGER_BODIES, ids=lambda v: str(v))
def test_the_ledgers_own_bodies_are_as_documented(
    shared_api: Api, path: str, model: type[BaseModel], params: dict[str, Any]
) -> None:
    """The bodies `api.schemas.responses` documents carry no field it leaves out: the
    verify body sent `tree_size` and `root`, which `/openapi.json` did not list."""
    shared_api.appraisal("planned")
    spec = shared_api.client.get("/openapi.json").json()
    schema = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
    assert schema["schema"] == {"$ref": f"#/components/schemas/{model.__name__}"}
    check(shared_api, path.format(position=1), model, **params)
