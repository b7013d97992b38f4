import dagster as dg

from dagster_project.defs.transform import assets

defs = dg.Definitions(assets=[assets.dbt_models, assets.dbt_clv_marts])
