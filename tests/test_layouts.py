"""The built-in export layouts are column maps (dagster_project/maps/builtin/*.yml): what they say
reaches ingestion, and a malformed one fails with a message naming the file and the key."""

from __future__ import annotations

import textwrap

import duckdb
import pytest

from dagster_project.lib import ingest
from dagster_project.lib.ingest import formats
from dagster_project.lib.ingest.maps import MapError


def test_every_builtin_layout_is_a_shipped_map_and_reaches_ingestion():
    shipped = sorted(p.stem for p in formats.BUILTIN_MAPS_DIR.glob("*.yml"))
    assert shipped == sorted(formats.BUILTIN) == sorted(lay.name for lay in formats.LAYOUTS)
    con = duckdb.connect()
    ingest.create_raw_tables(con)
    for lay in formats.LAYOUTS:
        raw = [
            r[0]
            for r in con.execute(
                "select column_name from information_schema.columns where table_schema = 'raw' and table_name = ? "
                "order by ordinal_position",
                [lay.name],
            ).fetchall()
        ]
        assert raw[: len(lay.fields)] == [f.name for f in lay.fields], lay.name
        # a value-required column is a header-required column; the signature is in the header
        for f in lay.fields:
            if f.required:
                assert set(f.source if isinstance(f.source, tuple) else (f.source,)) <= set(lay.required)
        assert lay.signature in lay.columns and set(lay.required) <= set(lay.columns)


def test_required_header_columns_follow_the_maps():
    """`required: header` (Shopify's Email, Total, ...) is checked on the header, not on the rows."""
    shopify = formats.layout("shopify_order_lines")
    assert shopify.required == [
        "Name",
        "Email",
        "Financial Status",
        "Currency",
        "Total",
        "Discount Amount",
        "Created at",
        "Lineitem quantity",
        "Lineitem price",
        "Cancelled at",
        "Refunded Amount",
    ]
    by_name = {f.name: f for f in shopify.fields}
    assert not by_name["email"].required and by_name["order_name"].required
    assert by_name["currency"].order_level and by_name["created_at"].order_level
    assert formats.layout("square_customers").required == ["Email Address", "Phone Number", "Square Customer ID"]
    assert formats.SQUARE_ITEMS_COLUMNS_V2 == formats.SQUARE_ITEMS_COLUMNS_V1 + ["GTIN", "Vendor Name"]
    assert formats.SQUARE_TIME_ZONES["Eastern Time (US & Canada)"] == "America/New_York"


BASE = """
    table: t
    folder: f
    signature: a
    header: [a, b, c]
"""


@pytest.mark.parametrize(
    "extra, message",
    [
        ("columns:\n  x: {from: z}\n", "columns.x reads ['z'], which are not in the header"),
        ("columns:\n  x: {from: a, type: number}\n", "columns.x has unknown type 'number'"),
        ("columns:\n  x: {from: a, required: yes please}\n", "columns.x.required must be true, false or header"),
        ("columns:\n  x: {from: a, type: enum}\n", "columns.x: `values` goes with type enum"),
        ("columns:\n  x: {from: a, kind: int}\n", "unknown keys ['kind'] under columns.x"),
        ("columns:\n  x: {from: [a, b, c], type: local_ts}\n", "type local_ts needs timestamp.formats"),
        ("columns:\n  x: a\nheader_versions:\n  v1: {without: [q]}\n", "header_versions.v1.without"),
        ("columns:\n  x: a\ncsv: {delimiter: ';'}\n", "unknown keys ['csv']"),
    ],
)
def test_a_malformed_layout_map_names_its_file_and_key(tmp_path, extra, message):
    path = tmp_path / "t.yml"
    path.write_text(textwrap.dedent(BASE) + extra)
    with pytest.raises(MapError) as err:
        formats.load_layout(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_a_small_layout_map_reads_as_written(tmp_path):
    path = tmp_path / "t.yml"
    path.write_text(
        textwrap.dedent(BASE) + "columns:\n  x: a\n  y: {from: b, type: int, required: true}\n"
        "  z: {from: c, required: header}\n"
    )
    lay = formats.load_layout(path)
    assert [(f.name, f.source, f.kind, f.required) for f in lay.fields] == [
        ("x", "a", "text", False),
        ("y", "b", "int", True),
        ("z", "c", "text", False),
    ]
    assert lay.required == ["b", "c"] and lay.header() == ["a", "b", "c"]
