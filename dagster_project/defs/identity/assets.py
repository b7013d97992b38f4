"""Identity resolution: one customer_key per person across online, store and the roster."""


import dagster as dg

from dagster_project.defs.ingestion.assets import LEDGER_KEY, RAW_TABLES
from dagster_project.lib import identity
from dagster_project.lib.orchestration import AS_OF_PARTITIONS, ONE_RUN_PER_DATE, retry_transient
from dagster_project.lib.resources import PipelineConfig

IDENTIFIERS_KEY = dg.AssetKey(["identity", "identifiers"])


@dg.asset(
    key=IDENTIFIERS_KEY,
    deps=[dg.AssetKey(["raw", t]) for t in RAW_TABLES if t not in ("marketing_spend", "store_traffic")] + [LEDGER_KEY],
    group_name="identity",
    partitions_def=AS_OF_PARTITIONS,
    backfill_policy=ONE_RUN_PER_DATE,
    kinds={"python", "duckdb"},
    description="Every raw e-mail, phone, Square customer id and member id, normalised, with the "
                "customer_key of the person it belongs to (people sharing any identifier are merged).",
)
def identifiers(context: dg.AssetExecutionContext, pipeline: PipelineConfig) -> dg.MaterializeResult:
    with retry_transient(context):
        con = pipeline.connect()
        try:
            stats = identity.resolve(con, default_region=pipeline.phone_region)
        finally:
            con.close()
    context.log.info(
        f"identity: {stats['people']} people from {stats['identifiers']} identifiers "
        f"({stats['invalid_values']} raw values were not valid e-mails/phones)"
    )
    return dg.MaterializeResult(metadata={k: int(v) for k, v in stats.items()})
