import dagster as dg

from dagster_project.defs.identity import assets

defs = dg.Definitions(assets=[assets.identity_resolution])
