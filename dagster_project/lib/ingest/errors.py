"""The one error ingestion raises for a bad file."""

from __future__ import annotations


class IngestError(Exception):
    """A problem with one file, named in the message."""
