"""The error hierarchy. Every message names what was asked and what is available.

The CLI catches `ServecastError` and prints its message on one line with a non-zero exit; anything
else is a bug and keeps its traceback.
"""
from __future__ import annotations


class ServecastError(Exception):
    """Base class: a problem the user can fix from the message alone."""

    exit_code = 2


class InputError(ServecastError):
    """A flag, file or value given by the user is not acceptable."""


class DataError(ServecastError):
    """A database, Parquet file or result file is missing, corrupt or inconsistent."""


class NotFoundError(ServecastError):
    """A named thing (system, model, op table, version) does not exist; the message lists what does."""


class InfeasibleError(ServecastError):
    """A deployment cannot run (memory, divisibility, SLA); the message says which constraint failed."""
