"""The README's "Opening the marts" section, and the example queries it links (docs/queries.md), run as
written against a demo run's serving file."""

import json
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
SECTION = README[README.index("## Opening the marts") :]
SECTION = SECTION[: SECTION.index("\n## ", 5)]
QUERIES_DOC = (REPO / "docs" / "queries.md").read_text(encoding="utf-8")


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def _marked_queries(text: str) -> list[str]:
    body = text[text.index("<!-- analyst-queries:start -->") : text.index("<!-- analyst-queries:end -->")]
    return _blocks(body, "sql")


def _analyst_queries() -> list[str]:
    """The README section's example queries, then the further ones in docs/queries.md."""
    return _marked_queries(SECTION) + _marked_queries(QUERIES_DOC)


@pytest.fixture(scope="module")
def workdir(demo_run, tmp_path_factory):
    """A directory where `data/` is the demo run's data directory, like the repository root after `make run`."""
    assert demo_run["result"].success
    d = tmp_path_factory.mktemp("readme")
    (d / "data").symlink_to(demo_run["data_dir"], target_is_directory=True)
    return d


def test_readme_has_the_snippets_we_test():
    assert len(_blocks(SECTION, "python")) == 3
    assert len(_marked_queries(SECTION)) >= 2 and "docs/queries.md" in SECTION
    assert len(_analyst_queries()) >= 8


@pytest.mark.parametrize("index", range(3))
def test_python_snippets_run_as_written(workdir, index):
    code = _blocks(SECTION, "python")[index]
    out = subprocess.run([sys.executable, "-c", code], cwd=workdir, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip(), "the snippet printed nothing"


@pytest.mark.parametrize("index", range(len(_analyst_queries())))
def test_analyst_queries_run_as_written_and_return_rows(workdir, index):
    sql = _analyst_queries()[index]
    con = duckdb.connect(str(workdir / "data" / "serving" / "warehouse.duckdb"), read_only=True)
    try:
        rows = con.execute(sql).fetchall()
    finally:
        con.close()
    assert rows, f"query returned no rows:\n{sql}"


def test_the_documented_connection_is_read_only(workdir):
    con = duckdb.connect(str(workdir / "data" / "serving" / "warehouse.duckdb"), read_only=True)
    try:
        with pytest.raises(duckdb.Error, match="read-only"):
            con.execute("create table marts.scratch as select 1")
    finally:
        con.close()


def test_dbt_docs_are_published_with_every_mart_column_described(demo_run):
    docs = demo_run["data_dir"] / "exports" / "latest" / "dbt_docs"
    index = (docs / "index.html").read_text(encoding="utf-8")
    assert len(index) > 100_000 and "customer_rfm" in index  # the static page embeds manifest and catalog
    manifest = json.loads((docs / "manifest.json").read_text())
    catalog = json.loads((docs / "catalog.json").read_text())
    marts = {
        n["name"]: n
        for n in manifest["nodes"].values()
        if n["resource_type"] == "model" and n["config"].get("schema") == "marts"
    }
    assert len(marts) >= 18
    in_catalog = {n["metadata"]["name"] for n in catalog["nodes"].values()}
    undocumented = []
    for name, node in marts.items():
        assert name in in_catalog, f"{name} missing from the catalog"
        assert node["description"].strip(), f"{name} has no description"
        catalog_cols = next(n["columns"] for n in catalog["nodes"].values() if n["metadata"]["name"] == name)
        for col in catalog_cols:
            if not node["columns"].get(col.lower(), {}).get("description", "").strip():
                undocumented.append(f"{name}.{col}")
    assert not undocumented, f"mart columns without a description: {undocumented}"


def _engine_line() -> str:
    """The README's SQLAlchemy engine, as written (the statement that starts with `engine =`)."""
    code = next(b for b in _blocks(SECTION, "python") if "sqlalchemy" in b)
    start = code.index("engine = ")
    return code[start : code.index("\n\n", start) if "\n\n" in code[start:] else None].split("\nwith ")[0]


def test_every_reader_recipe_sees_the_newest_run_after_reconnecting(workdir, tmp_path, monkeypatch):
    """Publish a newer serving file the way a run does (a new file renamed over the old one) while an
    analyst's process is open: the README's SQLAlchemy engine, reconnected, and a plain DuckDB
    connection, closed and reopened as the README says, both read the newer run."""
    import shutil

    import sqlalchemy

    from dagster_project.lib.export import publish

    data = tmp_path / "data" / "serving"
    data.mkdir(parents=True)
    shutil.copy(workdir / "data" / "serving" / "warehouse.duckdb", data / "warehouse.duckdb")
    monkeypatch.chdir(tmp_path)
    path = data / "warehouse.duckdb"
    query = "select value from meta.published_run where key = 'run_id'"

    def publish_run(run_id: str) -> None:
        staged = tmp_path / "staged.duckdb"
        shutil.copy(path, staged)
        con = duckdb.connect(str(staged))
        con.execute("update meta.published_run set value = ? where key = 'run_id'", [run_id])
        con.close()
        publish.replace_file(staged, path)

    scope: dict = {"sa": sqlalchemy}  # the README's snippet imports it as `sa`
    exec(_engine_line(), scope)  # the README's engine, as written
    engine = scope["engine"]
    with engine.connect() as con:
        first = con.execute(scope["sa"].text(query)).scalar_one()
    plain = duckdb.connect("data/serving/warehouse.duckdb", read_only=True)
    assert plain.sql(query).fetchone()[0] == first
    plain.close()

    publish_run("newer-run")
    with engine.connect() as con:
        assert con.execute(scope["sa"].text(query)).scalar_one() == "newer-run"
    plain = duckdb.connect("data/serving/warehouse.duckdb", read_only=True)
    assert plain.sql(query).fetchone()[0] == "newer-run"
    plain.close()
    engine.dispose()


def test_the_lifecycle_query_reads_the_last_complete_month(workdir):
    """The README's "last complete month" query returns a month the mart marks complete, and the month
    after it (the demo's as-of month, still going on) is marked partial."""
    sql = next(q for q in _analyst_queries() if "lifecycle_transitions" in q)
    con = duckdb.connect(str(workdir / "data" / "serving" / "warehouse.duckdb"), read_only=True)
    try:
        months = {r[0] for r in con.execute(sql).fetchall()}
        flags = dict(
            con.execute(
                "select month, bool_or(is_partial_period) from marts.lifecycle_transitions group by month"
            ).fetchall()
        )
    finally:
        con.close()
    assert len(months) == 1
    month = months.pop()
    assert flags[month] is False and max(flags) > month and flags[max(flags)] is True
