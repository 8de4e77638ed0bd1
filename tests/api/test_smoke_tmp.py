import json
from tests.api.story import Api, STAGES

def test_stages(api: Api) -> None:
    a = api.appraisal("final", level=2)
    for p in [f"/v1/executives/{a.executive_id}", f"/v1/executives/{a.executive_id}/ratings",
              f"/v1/executives/{a.executive_id}/removal-history", f"/v1/appraisals/{a.appraisal_id}",
              f"/v1/appraisals/{a.appraisal_id}/events", "/v1/reports/below-fully-successful",
              "/v1/reports/rating-distribution?cycle=FY2024&agency=DOE", "/v1/reports/compliance",
              f"/v1/executives/{a.executive_id}/evidence-bundle", "/v1/ledger/events?limit=3", "/v1/ledger/verify",
              f"/v1/executives/{a.executive_id}?as_of_position=3", "/v1/ledger/receipts/5",
              "/v1/ledger/proofs/inclusion?position=3&tree_size=5", "/v1/ledger/proofs/consistency?first=3&second=9"]:
        r = api.get(p)
        print(p, r.status_code, r.text[:300])
