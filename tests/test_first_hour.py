"""What a new user meets in the first hour: misplaced files, a mistyped data directory, the run
summary and `status` (each reason whole)."""

import shutil
from datetime import date

import pytest

from dagster_project.cli import main
from dagster_project.lib import ingest
from dagster_project.lib.demo.generator import generate_demo
from dagster_project.lib.ingest import formats
from tests.test_ingest import shopify_rows, write_csv


def test_unplaced_files_are_every_file_no_run_loads(tmp_path):
    inbox = tmp_path / "inbox"
    placed = [
        write_csv(inbox / "shopify" / "a.csv", formats.SHOPIFY_ORDER_COLUMNS, shopify_rows()),
        write_csv(inbox / "generic" / "till" / "b.csv", ["x"], [{"x": "1"}]),
    ]
    stray = [
        write_csv(inbox / "orders.csv", formats.SHOPIFY_ORDER_COLUMNS, shopify_rows()),
        write_csv(inbox / "orders" / "c.csv", formats.SHOPIFY_ORDER_COLUMNS, shopify_rows()),
        write_csv(inbox / "shopify" / "2026" / "d.csv", formats.SHOPIFY_ORDER_COLUMNS, shopify_rows()),
        write_csv(inbox / "generic" / "e.csv", ["x"], [{"x": "1"}]),
    ]
    (inbox / ".DS_Store").write_text("x")
    (inbox / "shopify" / ".hidden.csv").write_text("x")
    assert [p for _, p in ingest.discover(inbox)] == sorted(placed)
    assert ingest.unplaced_files(inbox) == sorted(stray)


@pytest.mark.slow
def test_mistyped_data_dir_fails_and_publishes_nothing(tmp_path, capsys):
    """`run --data-dir ./dta` (nothing ever loaded there): exit 1, the reason names the directory and
    how to start, and no tier list, manifest or serving file is written."""
    typo = tmp_path / "dta"
    assert main(["run", "--data-dir", str(typo), "--as-of", "2026-11-01", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "exports_have_been_loaded" in err and f"nothing has ever been loaded in the data directory {typo}" in err
    assert "python -m dagster_project demo --data-dir" in err and "shopify/" in err
    assert not (typo / "serving" / "warehouse.duckdb").exists()
    assert not [p for p in (typo / "exports").rglob("*") if p.is_file()]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("first_hour")
    generate_demo(data_dir, customers=150, seed=5, end_date=date(2026, 10, 31))
    return data_dir


@pytest.mark.slow
def test_misplaced_files_are_reported_by_run_and_status(small_run, tmp_path, capsys):
    """A Shopify export dropped in inbox/ itself or in inbox/orders/ is not loaded, and the run summary,
    `status` and a warning check say so with the known folders; the run still publishes."""
    data_dir = tmp_path / "d"
    shutil.copytree(small_run, data_dir)
    write_csv(data_dir / "inbox" / "shop_orders.csv", formats.SHOPIFY_ORDER_COLUMNS, shopify_rows())
    write_csv(data_dir / "inbox" / "orders" / "export.csv", formats.SHOPIFY_ORDER_COLUMNS, shopify_rows())
    assert main(["run", "--data-dir", str(data_dir), "--as-of", "2026-11-01", "--quiet"]) == 0
    out = capsys.readouterr().out
    expected = (
        "not loaded: 2 file(s) in no source folder of "
        + str(data_dir / "inbox")
        + ": orders/export.csv, shop_orders.csv (known folders: "
        + ingest.KNOWN_FOLDERS_TEXT
    )
    assert "warning: check raw/load_ledger:no_files_outside_source_folders failed (WARN): " + expected in out
    assert main(["status", "--data-dir", str(data_dir)]) == 0
    status = capsys.readouterr().out
    assert expected in status and "move each file into the folder for its kind)" in status  # whole, not cut
    assert "Serving warehouse" in out and "duckdb -readonly" not in out  # only what works after `make run`
    assert out.index("Serving warehouse") < out.index("Working warehouse")
    assert "(pipeline only" in out
    # quarantined rows: per-file counts and a command that lists them, which runs as printed
    import re
    import subprocess

    counts = re.search(r"rows set aside this run \(.*?\): (.*)", out).group(1)
    assert re.fullmatch(r"(\S+ \d+)(, \S+ \d+)*", counts), counts
    command = re.search(r"list them: (.*)", out).group(1)
    listed = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0 and "reason" in listed.stdout, listed.stderr


def test_failure_reason_is_the_innermost_cause_whole():
    from dagster._utils.error import SerializableErrorInfo

    from dagster_project.lib.status import failure_reason

    inner = SerializableErrorInfo(
        'IO Error: Could not set lock on file "/d/warehouse/pipeline.duckdb": Conflicting lock is held in '
        "/usr/bin/python3 (PID 4242)\n",
        [],
        "IOException",
    )
    outer = SerializableErrorInfo(
        'Error occurred while executing op "raw_exports":\n', [], "DagsterExecutionStepExecutionError", cause=inner
    )
    reason = failure_reason(outer)
    assert reason.startswith("IO Error: Could not set lock on file") and reason.endswith("(PID 4242)")


@pytest.mark.parametrize(
    "encoding,bom", [("utf-16", b""), ("utf-16-be", b"\xfe\xff"), ("utf-16-le", b""), ("utf-32", b""), ("utf-8", b"")]
)
def test_utf16_and_utf32_exports_load_like_utf8(tmp_path, encoding, bom):
    """Spreadsheet programs save 'Unicode text' as UTF-16 (with a BOM; some tools without one): the
    rows load as they do from UTF-8, and the ledger records the encoding read."""
    import csv
    import io

    from dagster_project.lib import warehouse

    rows = shopify_rows()
    rows[0]["Lineitem name"] = "Café crème €5 — 東京"
    buf = io.StringIO()
    w = csv.DictWriter(buf, formats.SHOPIFY_ORDER_COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows({c: r.get(c, "") for c in formats.SHOPIFY_ORDER_COLUMNS} for r in rows)
    path = tmp_path / "inbox" / "shopify" / "orders.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes(bom + buf.getvalue().encode(encoding))
    con = warehouse.connect(tmp_path / "w.duckdb")
    try:
        ingest.create_raw_tables(con)
        res = ingest.load_file(con, path, "shopify", "r1", display_root=tmp_path / "inbox", data_root=tmp_path)
        assert (res.status, res.rows_read, res.rows_loaded, res.rows_quarantined) == ("loaded", 4, 4, 0), res.message
        assert res.encoding.startswith(encoding[:6])
        names = {
            r[0]
            for r in con.execute(
                "select lineitem_name from raw.shopify_order_lines where lineitem_name is not null"
            ).fetchall()
        }
        assert names == {"Café crème €5 — 東京"}
    finally:
        con.close()


def test_a_broken_utf16_file_is_rejected_with_what_to_do(tmp_path):
    from dagster_project.lib import warehouse

    header = ",".join(formats.SHOPIFY_ORDER_COLUMNS) + "\n"
    path = tmp_path / "inbox" / "shopify" / "orders.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes(header.encode("utf-16") + "\ud800".encode("utf-16-le", "surrogatepass") + b"x")
    con = warehouse.connect(tmp_path / "w.duckdb")
    try:
        ingest.create_raw_tables(con)
        res = ingest.load_file(con, path, "shopify", "r1", display_root=tmp_path / "inbox", data_root=tmp_path)
    finally:
        con.close()
    assert res.status == "rejected" and "orders.csv: looks like UTF-16" in res.message
    assert "save it as UTF-8 CSV" in res.message


def test_an_unchanged_file_seen_again_is_not_an_event(tmp_path):
    """A second run over the same inbox writes no ledger rows for files it recorded before; a real
    re-drop of the same content under another name is still recorded as a duplicate, once."""
    from dagster_project.lib import warehouse

    inbox = tmp_path / "inbox"
    p = write_csv(inbox / "shopify" / "a.csv", formats.SHOPIFY_ORDER_COLUMNS, shopify_rows())
    con = warehouse.connect(tmp_path / "w.duckdb")
    try:
        first = ingest.ingest_inbox(con, inbox, "r1")
        assert [r.status for r in first] == ["loaded"]
        again = ingest.ingest_inbox(con, inbox, "r2")
        assert [r.status for r in again] == ["unchanged"]
        (inbox / "shopify" / "a again.csv").write_bytes(p.read_bytes())
        third = {r.path: r.status for r in ingest.ingest_inbox(con, inbox, "r3")}
        assert third == {"shopify/a.csv": "unchanged", "shopify/a again.csv": "duplicate"}
        fourth = {r.path: r.status for r in ingest.ingest_inbox(con, inbox, "r4")}
        assert set(fourth.values()) == {"unchanged"}
        ledger = con.execute("select run_id, file_name, status from raw.load_ledger order by file_id").fetchall()
        assert ledger == [("r1", "a.csv", "loaded"), ("r3", "a again.csv", "duplicate")]
    finally:
        con.close()


@pytest.mark.slow
def test_a_clean_demo_run_prints_no_warning_that_is_not_about_the_data(small_run, tmp_path):
    """`python -m dagster_project run` on clean demo data: no Python warning (a library's FutureWarning,
    a deprecation) and no Dagster warning about how a dbt test is recorded; the warnings left are about
    the user's data (a quarantined row, too few repeat buyers for the CLV model)."""
    import re
    import subprocess
    import sys

    data_dir = tmp_path / "d"
    shutil.copytree(small_run, data_dir)
    proc = subprocess.run(
        [sys.executable, "-m", "dagster_project", "run", "--data-dir", str(data_dir), "--as-of", "2026-11-01"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    assert not re.findall(r"\w+Warning: .*", text)
    assert "AssetObservation" not in text
    about_data = ("quarantined", "predicted CLV")
    stray = [line for line in text.splitlines() if " - WARNING - " in line and not any(w in line for w in about_data)]
    assert not stray, stray


@pytest.mark.slow
def test_a_reader_of_the_working_warehouse_is_named_as_the_cause(small_run, tmp_path, capsys, monkeypatch):
    """Another process holding the working warehouse open makes the run fail; the summary's line for
    the failed step is the lock error itself (file and the PID holding it), not Dagster's wrapper."""
    import subprocess
    import sys

    from dagster_project.lib import warehouse
    from dagster_project.lib.paths import DataPaths

    data_dir = tmp_path / "d"
    shutil.copytree(small_run, data_dir)
    paths = DataPaths.of(data_dir)
    paths.ensure()
    warehouse.connect(paths.warehouse).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; "
            f"c = duckdb.connect({str(paths.warehouse)!r}, read_only=True); "
            "print('open', flush=True); time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        monkeypatch.setenv("PIPELINE_RETRY_MAX", "0")
        assert main(["run", "--data-dir", str(data_dir), "--as-of", "2026-11-01", "--quiet"]) == 1
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err
    line = next(line for line in err.splitlines() if "step raw_exports failed" in line)
    assert "Could not set lock on file" in line and str(paths.warehouse) in line
    assert f"PID {holder.pid}" in line
