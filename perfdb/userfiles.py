"""Files a user named: reading a text file and checking an output path, each failure one line naming the path.

A user can hand any path to a flag that takes a file: a directory, a binary file, a Parquet table where a CSV
is read, a file that vanished. Each reader of a user-given text file (model configs, deployment specs,
calibrations, traces, run tables) goes through `read_text`, so none of these reaches the user as a traceback.
"""
from __future__ import annotations

from pathlib import Path

from perfdb.errors import DataError, InputError

_PARQUET_MAGIC = b"PAR1"


def read_text(path: Path | str, what: str, accepted: str) -> str:
    """The UTF-8 text of `path`. `what` names the input ("model config", "--trace file"), `accepted` says
    what it should be ("a config.json"); both go into the one-line error."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{what} {path} is a directory; expected {accepted}")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{what} {path} does not exist; expected {accepted}") from None
    except OSError as exc:
        raise DataError(f"{what} {path} cannot be read ({exc.strerror or exc}); expected {accepted}") from None
    if data.startswith(_PARQUET_MAGIC):
        raise DataError(f"{what} {path} is a Parquet file; expected {accepted}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{what} {path} is not UTF-8 text (a binary file?); expected {accepted}") from None


def check_out_file(path: Path | str, what: str) -> Path:
    """`path` as a file to (over)write: not a directory, in a directory that is one. Called before any work,
    so a bad output path fails at once and nothing is half-written."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{what} {path} is a directory; expected a file path to write")
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise InputError(f"{what} {path}: {parent} is a file, not a directory")
    return path


def check_out_dir(path: Path | str, what: str) -> Path:
    """`path` as a directory to write into: absent (it will be created) or a directory, never a file."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{what} {path} is a file; expected a directory (it is created when absent)")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise InputError(f"{what} {path}: {parent} is a file, not a directory")
    return path


def check_out_png(path: Path | str, what: str) -> Path:
    """A PNG to write: a file path ending in .png (matplotlib would pick a format from any other suffix)."""
    path = check_out_file(path, what)
    if path.suffix.lower() != ".png":
        raise InputError(f"{what} {path}: accepted: a file name ending in .png")
    return path
