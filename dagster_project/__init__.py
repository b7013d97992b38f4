"""Owned-audience customer value pipeline: retail exports -> DuckDB marts -> tier lists."""
