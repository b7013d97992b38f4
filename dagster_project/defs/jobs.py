"""Jobs named for what they do."""

import dagster as dg

from dagster_project.lib.orchestration import AS_OF_PARTITIONS

# Every run of the job writes the one DuckDB warehouse: the instance's dagster.yaml (written by the CLI,
# see README) limits runs carrying this tag to one at a time, so a backfill queues instead of colliding.
WRITER_TAG = {"pipeline/writer": "warehouse"}

refresh_customer_value = dg.define_asset_job(
    name="refresh_customer_value",
    selection=dg.AssetSelection.all(),
    partitions_def=AS_OF_PARTITIONS,
    tags=WRITER_TAG,
    description="Ingest the inbox, build the marts with dbt as of the partition's date, run every check, "
    "publish tier lists and the serving warehouse. One partition per as-of date.",
)
