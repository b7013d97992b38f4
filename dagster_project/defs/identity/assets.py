"""Identity resolution: one customer_key per person across online, store and the roster."""

import dagster as dg

from dagster_project.defs.ingestion.assets import LEDGER_KEY, RAW_TABLES
from dagster_project.lib.identity import blocklist as identity_blocklist, resolution
from dagster_project.lib.orchestration import AS_OF_PARTITIONS, ONE_RUN_PER_DATE, retry_transient
from dagster_project.lib.resources import PipelineConfig

IDENTIFIERS_KEY = dg.AssetKey(["identity", "identifiers"])
RESOLUTION_RUNS_KEY = dg.AssetKey(["identity", "resolution_runs"])
IDENTIFIER_CHANGES_KEY = dg.AssetKey(["identity", "identifier_changes"])
BLOCKED_KEY = dg.AssetKey(["identity", "blocked_identifiers"])
KEY_EVENTS_KEY = dg.AssetKey(["identity", "key_events"])
_DEPS = [dg.AssetKey(["raw", t]) for t in RAW_TABLES if t not in ("marketing_spend", "store_traffic")] + [LEDGER_KEY]


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            IDENTIFIERS_KEY,
            deps=_DEPS,
            group_name="identity",
            kinds={"python", "duckdb"},
            description="Every raw e-mail, phone, Square customer id and member id, normalised, with the "
            "customer_key of the person it belongs to (people sharing any identifier are merged).",
        ),
        dg.AssetSpec(
            RESOLUTION_RUNS_KEY,
            deps=_DEPS,
            group_name="identity",
            kinds={"duckdb"},
            description="One row per identity resolution (change_seq): when, how many identifiers changed.",
        ),
        dg.AssetSpec(
            IDENTIFIER_CHANGES_KEY,
            deps=_DEPS,
            group_name="identity",
            kinds={"duckdb"},
            description="Identifiers new or re-keyed by a resolution, kept until the incremental "
            "int_orders_identified has re-keyed their orders.",
        ),
        dg.AssetSpec(
            BLOCKED_KEY,
            deps=_DEPS,
            group_name="identity",
            kinds={"duckdb"},
            description="Identifiers that never link records: listed placeholders (the shipped blocklist "
            "and <data dir>/identity/blocklist.yml) and identifiers shared by more than "
            "PIPELINE_IDENTITY_MAX_SHARED otherwise separate customers.",
        ),
        dg.AssetSpec(
            KEY_EVENTS_KEY,
            deps=_DEPS,
            group_name="identity",
            kinds={"duckdb"},
            description="Customer keys merged, split, re-keyed or dissolved by each resolution, with the "
            "identifier that caused it.",
        ),
    ],
    name="identity_resolution",
    partitions_def=AS_OF_PARTITIONS,
    backfill_policy=ONE_RUN_PER_DATE,
)
def identity_resolution(context: dg.AssetExecutionContext, pipeline: PipelineConfig):
    with retry_transient(context, pipeline.settings):
        con = pipeline.connect()
        try:
            stats = resolution.resolve(
                con,
                default_region=pipeline.settings.phone_region,
                blocklist=identity_blocklist.load(pipeline.settings.phone_region, pipeline.paths.root),
                max_shared=pipeline.settings.identity_max_shared,
            )
        finally:
            con.close()
    context.log.info(
        f"identity ({'incremental: records of newly loaded files' if stats['incremental'] else 'full'}): "
        f"{stats['people']} people from {stats['identifiers']} identifiers "
        f"({stats['invalid_values']} raw values were not valid e-mails/phones, "
        f"{stats['identifiers_changed']} new or re-keyed since the last resolution; blocked: "
        f"{stats['blocked_listed']} listed placeholders, {stats['blocked_shared']} shared identifiers)"
    )
    yield dg.MaterializeResult(asset_key=IDENTIFIERS_KEY, metadata={k: int(v) for k, v in stats.items()})
    yield dg.MaterializeResult(asset_key=RESOLUTION_RUNS_KEY)
    yield dg.MaterializeResult(
        asset_key=IDENTIFIER_CHANGES_KEY, metadata={"identifiers_changed": int(stats["identifiers_changed"])}
    )
    yield dg.MaterializeResult(
        asset_key=BLOCKED_KEY, metadata={"listed": int(stats["blocked_listed"]), "shared": int(stats["blocked_shared"])}
    )
    yield dg.MaterializeResult(asset_key=KEY_EVENTS_KEY)
