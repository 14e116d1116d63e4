"""sol_ms for a frame of converted rows: one case per group of categorical values, arrays for the rest.

Uses the same case dataclasses (and so the same flops()/bytes()) as every other perfdb row.
"""
from __future__ import annotations

import sys
import typing
from enum import Enum

import numpy as np
import pandas as pd

from perfdb.ops import OP_CASES
from perfdb.roofline import sol_ms
from perfdb.specs import SystemSpec
from perfdb.types import OpKind


def _enum_fields(kind: OpKind) -> dict[str, type[Enum]]:
    cls = OP_CASES[kind]
    hints = typing.get_type_hints(cls, globalns=vars(sys.modules[cls.__module__]))
    return {name: t for name, t in hints.items() if isinstance(t, type) and issubclass(t, Enum)}


def frame_sol_ms(kind: OpKind, frame: pd.DataFrame, spec: SystemSpec) -> np.ndarray:
    cls = OP_CASES[kind]
    cats = list(cls.categorical_fields())
    enums = _enum_fields(kind)
    out = np.empty(len(frame), dtype=np.float64)
    if not len(frame):
        return out
    for values, idx in frame.groupby(cats, sort=False).indices.items():
        values = values if isinstance(values, tuple) else (values,)
        kwargs = {name: (enums[name](v) if name in enums else (int(v) if isinstance(v, (np.integer,)) else v))
                  for name, v in zip(cats, values, strict=True)}
        for name in cls.NUMERIC:
            kwargs[name] = frame[name].to_numpy()[idx].astype(np.float64)
        out[idx] = sol_ms(cls(**kwargs), spec)
    return out
