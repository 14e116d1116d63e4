"""YAML out through libyaml when PyYAML has it (10x faster than the pure-Python emitter)."""
from __future__ import annotations

import yaml

_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def dump(obj) -> str:
    return yaml.dump(obj, Dumper=_DUMPER, sort_keys=False)


def dump_all(docs) -> str:
    return yaml.dump_all(docs, Dumper=_DUMPER, sort_keys=False)
