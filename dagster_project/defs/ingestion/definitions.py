import dagster as dg

from dagster_project.defs.ingestion import assets, checks, sensors

defs = dg.Definitions(
    assets=[assets.raw_exports],
    asset_checks=[
        checks.no_rejected_files,
        checks.rows_read_equal_loaded_plus_quarantined,
        checks.exports_are_fresh,
        checks.exports_have_been_loaded,
        checks.no_files_outside_source_folders,
        *checks.GX_CHECKS,
    ],
    sensors=[sensors.inbox_sensor],
)
