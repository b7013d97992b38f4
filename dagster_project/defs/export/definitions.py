import dagster as dg

from dagster_project.defs.export import assets

defs = dg.Definitions(assets=[assets.published_run])
