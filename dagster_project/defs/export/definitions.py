import dagster as dg

from dagster_project.defs.export import assets

defs = dg.Definitions(
    assets=[
        assets.tier_lists,
        assets.serving_copy,
        assets.parquet_marts,
        assets.run_report,
        assets.manifest,
        assets.published_run,
    ]
)
