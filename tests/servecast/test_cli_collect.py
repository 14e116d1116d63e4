"""`servecast collect plan|run` through typer's runner (in-process, real torch on CPU)."""
import pytest
from typer.testing import CliRunner

from perfdb.storage import list_tables, read_table
from perfdb.types import OpKind
from servecast.commands.collect import app

runner = CliRunner()


def test_plan_lists_case_counts_and_duration():
    res = runner.invoke(app, ["plan", "--device", "cpu", "--ops", "gemm,moe"])
    assert res.exit_code == 0, res.output
    assert "gemm" in res.output and "moe" in res.output and "total" in res.output and " s" in res.output


def test_plan_budget_drops_cases_for_a_later_run():
    res = runner.invoke(app, ["plan", "--device", "cpu", "--grid", "full", "--ops", "gemm", "--budget-minutes", "1"],
                        terminal_width=200)
    assert res.exit_code == 0, res.output
    assert "exceed --budget-minutes" in res.output


def test_run_the_documented_cpu_form_then_read_the_db(tmp_path):
    db = tmp_path / "db"
    args = ["run", "--backend", "torch", "--device", "cpu", "--ops", "gemm", "--db", str(db), "--budget-minutes", "1",
            "--timer-budget-ms", "5", "--quiet"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    (key,) = list_tables(db)
    assert key.op == OpKind.GEMM and key.system == "cpu_host"
    assert read_table(db, key).num_rows > 0
    again = runner.invoke(app, args)
    assert "measured 0" in again.output and "already in db" in again.output
    from servecast.commands.db import app as db_app  # the lookup side reads what the collectors wrote

    checked = runner.invoke(db_app, ["validate", "--db", str(db)])
    assert checked.exit_code == 0 and "0 rejected" in checked.output, checked.output


def test_bad_flags_are_one_line_errors(tmp_path):
    from perfdb.errors import InputError, NotFoundError

    res = runner.invoke(app, ["plan", "--device", "tpu"])
    assert isinstance(res.exception, InputError) and "accepted: cuda, cpu" in str(res.exception)
    res = runner.invoke(app, ["plan", "--device", "cpu", "--ops", "conv"])
    assert isinstance(res.exception, InputError) and "attention_decode" in str(res.exception)
    res = runner.invoke(app, ["plan", "--device", "cpu", "--system", "tpu_v5"])
    assert isinstance(res.exception, NotFoundError)
    res = runner.invoke(app, ["run", "--device", "cpu", "--ops", "comm", "--db", str(tmp_path)])
    assert isinstance(res.exception, InputError) and "torchrun" in str(res.exception)
    res = runner.invoke(app, ["run", "--device", "cpu", "--ops", "gemm", "--db", str(tmp_path), "--budget-minutes", "-1"])
    assert isinstance(res.exception, InputError) and "--budget-minutes -1" in str(res.exception)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    res = runner.invoke(app, ["run", "--device", "cpu", "--ops", "gemm", "--db", str(blocker / "db")])
    assert isinstance(res.exception, InputError) and "cannot create a database" in str(res.exception)


def test_cuda_without_a_visible_gpu_is_a_one_line_error(tmp_path):
    import torch

    from perfdb.errors import InputError

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: --device cuda is valid here")
    res = runner.invoke(app, ["run", "--device", "cuda", "--ops", "gemm", "--db", str(tmp_path)])
    assert isinstance(res.exception, InputError) and "sees no CUDA GPU" in str(res.exception)


def test_model_driven_plan_uses_the_estimator_shapes():
    pytest.importorskip("estimator.steps")
    res = runner.invoke(app, ["plan", "--device", "cpu", "--model", "Qwen/Qwen3-8B", "--tp", "1,2",
                              "--ops", "gemm,attention_prefill,attention_decode"])
    assert res.exit_code == 0, res.output
    assert "gemm" in res.output and "attention_decode" in res.output


def test_prior_flags_need_adaptive_and_a_database(tmp_path):
    from perfdb.errors import DataError, InputError

    base = ["run", "--device", "cpu", "--ops", "gemm", "--db", str(tmp_path / "db")]
    res = runner.invoke(app, base + ["--prior-system", "h100_sxm"])
    assert isinstance(res.exception, InputError) and "--prior-db" in str(res.exception)
    res = runner.invoke(app, base + ["--prior-db", str(tmp_path)])
    assert isinstance(res.exception, InputError) and "--adaptive" in str(res.exception)
    res = runner.invoke(app, base + ["--adaptive", "--prior-db", str(tmp_path / "nothing")])
    assert isinstance(res.exception, DataError) and "not a servecast database" in str(res.exception)
