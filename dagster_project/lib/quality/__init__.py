"""Data-quality checks with Great Expectations on the raw rows the pipeline loads.

`gx_suites` declares the expectation suites, `gx_validation` runs them and renders the validation
report, and `raw_validation` applies them to the rows ingestion loaded into the `raw` schema.
Checks on models and marts are dbt tests, not here.
"""
