"""The whole pipeline on a tiny CPU sweep: plan -> measure -> atomic shards -> perfdb tables."""
import json

import pyarrow.parquet as pq

from collectors import runner
from collectors.failures import read_failures
from collectors.plan import make_plan
from collectors.registry import GridSize
from perfdb.schema import SCHEMAS
from perfdb.storage import TableKey, list_tables, read_meta, read_table
from perfdb.types import Backend, Dtype, OpKind, TimingMethod

OPS = [k for k in OpKind if k != OpKind.COMM]


def _plan(session, ops=OPS):
    return make_plan(ops, GridSize.TINY, session.ctx, session.spec, session.timer)


def test_tiny_sweep_fills_every_family_table(tmp_path, cpu_session):
    plan = _plan(cpu_session)
    cases = [c for kind in OPS for c in [c for c in plan.cases if c.KIND == kind][:3]]  # 3 per family: fast
    summary = runner.run(cases, tmp_path, cpu_session, rows_per_shard=4)
    assert summary.measured + summary.failed == len(cases) and summary.remaining == 0
    tables = {k.op: k for k in list_tables(tmp_path)}
    assert set(tables) == set(OPS)
    for op, key in tables.items():
        t = read_table(tmp_path, key).to_pandas()
        assert t.schema if False else list(t.columns) == SCHEMAS[op].names
        assert (t.latency_ms > 0).all() and (t.sol_ms > 0).all() and (t.p10_ms <= t.p90_ms).all()
        assert set(t.timing_method) == {TimingMethod.CPU_PERF_COUNTER.value}
        assert set(t.system) == {"cpu_host"} and set(t.backend) == {"torch"}
        assert t.gpu_name.str.len().min() > 0 and t.collector_version.notna().all()
    meta = read_meta(tmp_path, "cpu_host", Backend.TORCH, cpu_session.prov.backend_version)
    assert meta["device"] == "cpu" and meta["timer"]["max_reps"] == cpu_session.timer.max_reps
    assert not list(tmp_path.rglob(".tmp-*"))  # every shard was renamed into place


def test_failures_are_recorded_with_reasons_and_skipped_on_rerun(tmp_path, cpu_session):
    gemm = [c for c in _plan(cpu_session, [OpKind.GEMM]).cases]
    first = runner.run(gemm, tmp_path, cpu_session)
    failures = read_failures(tmp_path)
    assert first.failed == len(failures) >= 1
    nvfp4 = [f for f in failures if f.key[0] == Dtype.NVFP4.value]
    assert nvfp4 and "sm100" in nvfp4[0].reason and nvfp4[0].error == "Unsupported"
    line = json.loads(first.failures_file.read_text().splitlines()[0])
    assert line["op"] == "gemm" and line["backend"] == "torch"
    again = runner.run(gemm, tmp_path, cpu_session)
    assert (again.measured, again.failed, again.skipped) == (0, 0, len(gemm))
    retry = runner.run(gemm, tmp_path, cpu_session, retry_failed=True)
    assert retry.failed == first.failed and retry.measured == 0


def test_budget_stops_between_cases_and_the_rest_stays_pending(tmp_path, cpu_session):
    cases = list(_plan(cpu_session, [OpKind.ELEMENTWISE]).cases)
    cut = runner.run(cases, tmp_path, cpu_session, budget_s=0.0)
    assert cut.measured == 0 and cut.remaining == len(cases)
    rest = runner.run(cases, tmp_path, cpu_session)
    assert rest.measured == len(cases)
    key = TableKey("cpu_host", Backend.TORCH, cpu_session.prov.backend_version, OpKind.ELEMENTWISE)
    assert read_table(tmp_path, key).num_rows == len(cases)


def test_progress_callback_reports_each_case(tmp_path, cpu_session):
    cases = list(_plan(cpu_session, [OpKind.MLA_DECODE]).cases)
    seen = []
    runner.run(cases, tmp_path, cpu_session, on_progress=seen.append)
    assert [p.done for p in seen] == list(range(1, len(cases) + 1)) and seen[-1].total == len(cases)
    assert all(p.last.startswith("mla_decode") for p in seen)


def test_shards_are_plain_parquet(tmp_path, cpu_session):
    runner.run(list(_plan(cpu_session, [OpKind.ATTENTION_DECODE]).cases), tmp_path, cpu_session)
    shard = next(tmp_path.rglob("part-*.parquet"))
    assert pq.read_table(shard).schema.metadata[b"op"] == b"attention_decode"
