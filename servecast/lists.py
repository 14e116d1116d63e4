"""Comma lists on the command line (`--concurrency 1,4,16`, `--ops gemm,moe`, `--tp 1,2,8`), parsed in one place.

Empty items are dropped (`1,,4` is `1,4`); a bad item is a one-line InputError naming the flag and an example.
"""
from __future__ import annotations

from perfdb.errors import InputError


def items(text: str | None) -> list[str]:
    """The stripped, non-empty items of a comma list; [] for None or ''."""
    return [part.strip() for part in text.split(",") if part.strip()] if text else []


def ints(text: str | None, flag: str, example: str = "1,4,16") -> list[int]:
    try:
        return [int(x) for x in items(text)]
    except ValueError:
        raise InputError(f"--{flag} takes comma-separated integers, e.g. {example}; got {text!r}") from None


def floats(text: str | None, flag: str, example: str = "2,4,8") -> list[float]:
    try:
        return [float(x) for x in items(text)]
    except ValueError:
        raise InputError(f"--{flag} takes comma-separated numbers, e.g. {example}; got {text!r}") from None
