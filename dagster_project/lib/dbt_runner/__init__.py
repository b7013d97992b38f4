"""Running dbt from the pipeline: the dbt project as Dagster sees it, and the dbt process itself.

`project` reads the manifest and sets dbt's environment, `guard` is the `owned-audience-dbt`
command (dbt in a process that dies with the run that started it), and `spark_interop` moves data
between the DuckDB warehouse and the Spark target. (Not named `dbt`, which would shadow dbt's own
package.)
"""
