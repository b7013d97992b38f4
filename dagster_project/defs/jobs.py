"""Jobs named for what they do."""

import dagster as dg

refresh_customer_value = dg.define_asset_job(
    name="refresh_customer_value",
    selection=dg.AssetSelection.all(),
    description="Ingest the inbox, build the marts with dbt, run every check, publish tier lists and the serving warehouse.",
)
