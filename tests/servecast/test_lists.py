"""Comma lists parsed in one place (servecast/lists.py)."""
import pytest

from perfdb.errors import InputError
from servecast import lists
from servecast.cli import run


def test_lists():
    assert lists.items(" a, ,b ") == ["a", "b"] and lists.items(None) == [] and lists.items("") == []
    assert lists.ints("1,,4", "concurrency") == [1, 4]
    assert lists.floats("2, 0.5", "request-rate") == [2.0, 0.5]
    with pytest.raises(InputError, match="--tp takes comma-separated integers, e.g. 1,2,8; got '1,x'"):
        lists.ints("1,x", "tp", "1,2,8")


def test_collect_plan_tp_list_is_one_line(capsys):
    assert run(["collect", "plan", "--ops", "gemm", "--device", "cpu", "--grid", "tiny", "--model", "Qwen/Qwen3-0.6B",
                "--tp", "1,x"]) == 2
    assert capsys.readouterr().err.strip() == "error: --tp takes comma-separated integers, e.g. 1,2,8; got '1,x'"
