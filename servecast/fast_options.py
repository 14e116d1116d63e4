"""Plain str/int/float options converted without pydantic (a CLI start-up speed-up).

typer >= 0.2x coerces every option value through a pydantic TypeAdapter built on first use: the
pydantic import plus one adapter per option cost 0.13-0.2 CPU s of each `servecast` invocation,
a fifth of `servecast plan`'s one-second budget. For the options servecast actually declares
(plain str, int, float and bool, no min/max, no parser) the conversion is trivial, so this module
installs a runtime parameter that converts the unambiguous cases itself (a str; a bool that is already one; a decimal integer
string for int; a decimal number string for float) and hands everything else, including every
value it would reject, to typer's own pydantic path: results and error messages are unchanged.

It hooks typer's private `_TyperParameter.get_runtime_param`; with a typer that lacks it (older or
newer layouts) `install()` does nothing and typer behaves as shipped.
"""
from __future__ import annotations

import re

_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _convert(annotation, value):
    """(True, converted) when the value is a case this module handles, else (False, None)."""
    if annotation is bool and type(value) is bool:
        return True, value
    if annotation is str and isinstance(value, str):
        return True, value
    if annotation is int:
        if type(value) is int:
            return True, value
        if isinstance(value, str) and _INT.fullmatch(value):
            return True, int(value)
    if annotation is float:
        if type(value) is float:
            return True, value
        if isinstance(value, str) and _FLOAT.fullmatch(value):
            return True, float(value)
    return False, None


def install() -> bool:
    """Hook typer's option coercion; True when installed."""
    try:
        from dataclasses import dataclass

        from typer import _coercion, core
    except ImportError:
        return False
    param_cls = getattr(core, "_TyperParameter", None)
    base = getattr(_coercion, "RuntimeParam", None)
    build = getattr(_coercion, "build_runtime_param", None)
    if param_cls is None or base is None or build is None or not hasattr(param_cls, "get_runtime_param"):
        return False

    @dataclass(frozen=True)
    class ScalarRuntimeParam(base):
        descriptor: object

        def _coerce_value(self, value, param, ctx):
            ok, converted = _convert(self.annotation, value)
            if ok:
                return converted
            return build(self.descriptor)._coerce_value(value, param=param, ctx=ctx)   # typer's own path

    def get_runtime_param(self):
        if getattr(self, "_runtime_param", None) is None:
            d = self.type_descriptor
            info = d.parameter_info
            simple = (d.annotation in (str, int, float, bool) and d.file_annotation is None
                      and getattr(info, "parser", None) is None and getattr(info, "min", None) is None
                      and getattr(info, "max", None) is None and getattr(info, "click_type", None) is None)
            self._runtime_param = (ScalarRuntimeParam(parameter_info=info, annotation=d.annotation, descriptor=d)
                                   if simple else build(d))
        return self._runtime_param

    param_cls.get_runtime_param = get_runtime_param
    return True
