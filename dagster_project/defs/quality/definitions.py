import dagster as dg

from dagster_project.defs.quality import checks

defs = dg.Definitions(asset_checks=[checks.net_revenue_reconciles_to_raw, *checks.REVENUE_CHECKS])
