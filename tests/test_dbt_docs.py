"""The dbt docs site is reused when nothing it shows changed, and regenerated when something did."""

import duckdb

from dagster_project.lib.dbt_runner import project as dbt_project
from dagster_project.lib.dbt_runner.project import DOCS_FILES, docs_cache_key, remember_docs, reuse_docs


def _site(folder, text):
    folder.mkdir(parents=True, exist_ok=True)
    for name in DOCS_FILES:
        (folder / name).write_text(f"{name} {text}")
    return folder


def test_docs_key_follows_columns_and_project_files(tmp_path, monkeypatch):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("create schema marts; create table marts.dim_customers (a integer)")
    con.execute("create table marts.not_a_model (a integer)")
    con.execute("create schema raw; create table raw.r (x integer)")
    key = docs_cache_key(con)
    assert docs_cache_key(con) == key
    con.execute("insert into raw.r values (1); insert into marts.dim_customers values (2)")  # data: same docs
    assert docs_cache_key(con) == key
    con.execute("alter table raw.r add column y integer")  # not a dbt relation: same docs
    con.execute("alter table marts.not_a_model add column y integer")  # not a dbt model: same docs
    assert docs_cache_key(con) == key
    con.execute("alter table marts.dim_customers add column b varchar")  # a column dbt documents
    with_column = docs_cache_key(con)
    assert with_column != key
    # a changed model file changes the key (a copy of the project, so the real one is untouched)
    import shutil

    project = tmp_path / "dbt"
    shutil.copytree(dbt_project.DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    relations = dbt_project.documented_relations()  # from the real manifest (no re-parse of the copy)
    monkeypatch.setattr(dbt_project, "documented_relations", lambda: relations)
    monkeypatch.setattr(dbt_project, "DBT_PROJECT_DIR", project)
    assert docs_cache_key(con) == with_column
    model = next((project / "models").rglob("*.sql"))
    model.write_text(model.read_text() + "\n-- a comment\n")
    assert docs_cache_key(con) != with_column


def test_reuse_only_the_site_cached_for_the_same_key(tmp_path):
    cache, out = tmp_path / "cache", tmp_path / "out"
    assert not reuse_docs(cache, "k1", out)  # nothing cached yet
    remember_docs(_site(tmp_path / "gen", "first"), cache, "k1")
    assert not reuse_docs(cache, "k2", out)
    assert reuse_docs(cache, "k1", out)
    assert (out / "index.html").read_text() == "index.html first"
    (cache / "catalog.json").unlink()  # a damaged cache is regenerated, not half reused
    assert not reuse_docs(cache, "k1", tmp_path / "out2")
