"""`owned-audience-dbt`: dbt's own command line, in a process that dies with the run that started it.

dagster-dbt runs `dbt build` as a child process of the pipeline run. When the run's process dies
abruptly (SIGKILL, the kernel's OOM killer, a container or scheduler stopping it hard), a plain
`dbt` child carries on: it keeps building into the working warehouse with nobody reading its
results, and it holds DuckDB's single-writer lock, so the next run (or a retry started by the
scheduler) fails with "Could not set lock on file". Measured on the demo data: an orphaned build
lived 16.5 s after its run was killed.

This entry point (a console script installed beside `dbt`, see pyproject.toml) asks Linux to
SIGKILL it when its parent dies (prctl PR_SET_PDEATHSIG), then runs dbt in this process. A build
killed that way leaves the warehouse as DuckDB leaves any interrupted writer: every statement that
committed stays, the one in flight is rolled back, and the next run rebuilds from there.
Elsewhere (macOS) there is no such kernel hook and this is plain dbt.

Imports nothing of the pipeline: dbt's start-up cost is unchanged.
"""

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent() -> bool:
    """Have the kernel SIGKILL this process when its parent dies; False where that is unsupported.

    The signal follows the parent *thread* that started this process: dagster-dbt starts dbt from
    the thread that then reads dbt's output until dbt ends, so that thread outlives the build.
    """
    if not sys.platform.startswith("linux"):
        return False
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(err)}")
    # The parent died before the prctl call: we were re-parented (to init, pid 1, outside containers
    # with a subreaper). The window is this interpreter's start-up (~20 ms).
    if parent == 1 or os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)
    return True


def main() -> None:
    die_with_parent()
    from dbt.cli.main import cli

    sys.argv[0] = "dbt"
    sys.exit(cli())


if __name__ == "__main__":
    main()
