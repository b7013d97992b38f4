import dagster as dg

from dagster_project.defs.models import assets

defs = dg.Definitions(assets=[assets.clv_model])
