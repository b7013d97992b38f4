"""Adapter (Great Expectations, private): do not fingerprint every pandas batch.

GX's pandas engine hashes each DataFrame under 1 GB (`pandas_data_fingerprint`: an md5 of
`hash_pandas_object` over every cell) only to label the batch in the result, which this pipeline
does not keep; on a large mart that was most of the validation's time (BENCHMARKS.md, run D). The
threshold is a module constant the engine reads on each batch; 0 turns the fingerprint off.

The members used are in `RELIES_ON`, checked by tests/test_adapters.py; tests/test_gx_validation.py
checks that a validation hashes nothing.
"""

from __future__ import annotations

_ENGINE = "great_expectations.execution_engine.pandas_execution_engine"
RELIES_ON = {
    f"{_ENGINE}.HASH_THRESHOLD": "type:float",
    f"{_ENGINE}.PandasExecutionEngine.get_batch_data_and_markers": "211820aaa4b86075",  # reads it for every batch
}


def skip_batch_fingerprint() -> None:
    from great_expectations.execution_engine import pandas_execution_engine

    pandas_execution_engine.HASH_THRESHOLD = 0
