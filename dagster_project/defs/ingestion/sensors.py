"""A sensor that starts a run when new or changed files land in the inbox."""

import hashlib
import json

import dagster as dg

from dagster_project.defs.jobs import refresh_customer_value
from dagster_project.lib import ingest
from dagster_project.lib.config import Settings
from dagster_project.lib.orchestration import LOADED, business_today
from dagster_project.lib.paths import DataPaths


def inbox_fingerprint(paths: DataPaths) -> dict[str, str]:
    """path -> "size:mtime_ns" for every file the ingestion would look at."""
    out = {}
    for folder, p in ingest.discover(paths.inbox):
        st = p.stat()
        out[f"{folder}/{p.name}"] = f"{st.st_size}:{st.st_mtime_ns}"
    return out


@dg.sensor(
    job=refresh_customer_value,
    minimum_interval_seconds=LOADED.sensor_interval_seconds,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Starts refresh_customer_value when files are added to or changed in <data dir>/inbox.",
)
def inbox_sensor(context: dg.SensorEvaluationContext):
    paths = DataPaths(Settings.from_env().data_dir)  # read each tick, like a run's settings
    current = inbox_fingerprint(paths)
    previous = json.loads(context.cursor) if context.cursor else {}
    changed = sorted(k for k, v in current.items() if previous.get(k) != v)
    if not changed:
        return dg.SkipReason(f"no new files in {paths.inbox}")
    context.update_cursor(json.dumps(current, sort_keys=True))
    # the run key names exactly which file versions triggered it (stable across processes)
    digest = hashlib.sha256(json.dumps({k: current[k] for k in changed}, sort_keys=True).encode()).hexdigest()
    run_key = f"inbox-{digest[:16]}"
    # New exports are read as of today (the day they arrived), like an ad-hoc `run` without --as-of.
    return dg.RunRequest(
        run_key=run_key,
        partition_key=business_today().isoformat(),
        tags={"trigger": "inbox_sensor", "new_files": str(len(changed))},
    )
