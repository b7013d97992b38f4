"""The demo data set: a seeded, deterministic generator of retailer exports in their real formats.

`generator` writes what a retailer selling online (Shopify) and in stores (Square POS) would
export, plus membership, marketing spend and store traffic, with planted facts the tests check.
It is used by `python -m dagster_project demo`, the tests and the benchmarks; the pipeline never
imports it.
"""
