from dagster_project.cli import main
from dagster_project.lib.adapters.fast_exit import exit_now

if __name__ == "__main__":
    exit_now(main())
