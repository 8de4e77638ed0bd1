"""SES Ledger's read models: projections of the event log into tables of the same store.

`projections.queries.ReadModels` is the facade the API and the CLI use; `runner.Runner`
applies events exactly once (rows and tracking position in one transaction); each read
model lives in its own module (`current_ratings`, `removal_history`, `compliance`,
`audit`), with reports over them in `reports`. Domain rules come only from
`ledger.policies`.
"""
