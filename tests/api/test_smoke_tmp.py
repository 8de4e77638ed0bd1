from tests.api.story import Api, STAGES

def test_stages(api: Api) -> None:
    for stage in STAGES:
        a = api.appraisal(stage)
    print(api.ledger_size())
