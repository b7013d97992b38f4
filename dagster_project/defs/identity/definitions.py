import dagster as dg

from dagster_project.defs.identity import assets, checks

defs = dg.Definitions(assets=[assets.identity_resolution], asset_checks=[checks.no_shared_identifiers])
