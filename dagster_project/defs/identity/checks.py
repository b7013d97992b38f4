import dagster as dg

from dagster_project.defs.identity.assets import BLOCKED_KEY
from dagster_project.lib.resources import PipelineConfig


@dg.asset_check(
    asset=BLOCKED_KEY,
    blocking=False,
    description="Warns when an identifier not on the blocklist was shared by more than "
    "PIPELINE_IDENTITY_MAX_SHARED otherwise separate customers and was therefore not used "
    "to link them (a store phone or a placeholder e-mail to add to the blocklist).",
)
def no_shared_identifiers(pipeline: PipelineConfig) -> dg.AssetCheckResult:
    con = pipeline.connect(read_only=True)
    try:
        rows = con.execute(
            "select id_type, sha256(normalised_value), customers_touched, sources from identity.blocked_identifiers "
            "where reason = 'shared' order by customers_touched desc, id_type, normalised_value"
        ).fetchall()
    finally:
        con.close()
    limit = pipeline.settings.identity_max_shared
    shown = ", ".join(f"{t} {h[:12]}… ({n} customers; {s})" for t, h, n, s in rows[:5])
    return dg.AssetCheckResult(
        passed=not rows,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{len(rows)} identifier(s) shared by more than {limit} otherwise separate customers were not "
            f"used to link them: {shown}{' …' if len(rows) > 5 else ''}; see marts.identity_blocked_identifiers "
            f"and list them in <data dir>/identity/blocklist.yml"
        )
        if rows
        else f"no identifier joins more than {limit} otherwise separate customers",
        metadata={"shared_identifiers": len(rows), "max_shared": limit},
    )
