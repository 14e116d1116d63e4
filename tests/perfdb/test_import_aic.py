import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
from fixtures.aic_layout import build_aic, build_wheel
from typer.testing import CliRunner

from perfdb.errors import DataError, InputError, NotFoundError
from perfdb.importers import import_aic
from perfdb.ops import AttentionDecodeCase, GemmCase
from perfdb.roofline import sol_ms
from perfdb.schema import SCHEMAS
from perfdb.specs import load_system
from perfdb.storage import TableKey, list_tables, read_meta, read_table, shard_paths
from perfdb.types import Backend, Dtype, OpKind


@pytest.fixture
def aic(tmp_path):
    return build_aic(tmp_path / "src")


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """One import of the whole fixture, shared by the read-only tests: (db root, report)."""
    root = tmp_path_factory.mktemp("aic")
    db = root / "db"
    return db, import_aic(build_aic(root / "src"), db)


def _rows(db, backend, version, op):
    return read_table(db, TableKey("h200_sxm", backend, version, op)).to_pandas()


def test_import_lands_rows_with_schema_and_provenance(imported):
    db, report = imported
    gemm = _rows(db, Backend.TRTLLM, "1.3.0rc20", OpKind.GEMM)
    assert list(gemm.columns) == SCHEMAS[OpKind.GEMM].names
    assert len(gemm) == 12                                      # bf16 + fp8 + int4 weight-only
    assert set(gemm["dtype"]) == {"bf16", "fp8", "int4"}
    assert set(gemm["timing_method"]) == {"imported"} and set(gemm["backend_version"]) == {"1.3.0rc20"}
    assert set(gemm["gpu_name"]) == {"NVIDIA H200"} and set(gemm["kernel_source"]) == {"torch_flow"}
    assert str(gemm["collected_at"].iloc[0].date()) == "2026-08-09"
    row = gemm.iloc[0]
    case = GemmCase(Dtype(row["dtype"]), row["m"], row["n"], row["k"])
    assert row["sol_ms"] == pytest.approx(float(sol_ms(case, load_system("h200_sxm"))))
    assert report.skipped_systems == ("l40s",)
    assert {(k.backend, k.op) for k in list_tables(db)} >= {(Backend.TRTLLM, op) for op in
                                                             (OpKind.GEMM, OpKind.ATTENTION_PREFILL, OpKind.ATTENTION_DECODE,
                                                              OpKind.MLA_PREFILL, OpKind.MLA_DECODE, OpKind.MOE, OpKind.COMM)}


def test_decode_kv_len_is_isl_plus_step_and_mla_dims(imported):
    db, _ = imported
    dec = _rows(db, Backend.TRTLLM, "1.3.0rc20", OpKind.ATTENTION_DECODE)
    assert sorted(set(dec["kv_len"])) == [64, 1024]
    r = dec.iloc[0]
    case = AttentionDecodeCase(Dtype.BF16, Dtype.FP8, 32, 8, 128, 0, r["batch"], r["kv_len"])
    assert r["sol_ms"] == pytest.approx(float(sol_ms(case, load_system("h200_sxm"))))
    mla = _rows(db, Backend.TRTLLM, "1.3.0rc20", OpKind.MLA_DECODE)
    assert set(mla["kv_lora_rank"]) == {512} and set(mla["qk_rope_head_dim"]) == {64}
    assert set(mla["num_heads"]) == {128, 16} and set(mla["kv_len"]) == {512}
    pre = _rows(db, Backend.TRTLLM, "1.3.0rc20", OpKind.ATTENTION_PREFILL)
    assert set(pre["seq_len"]) == {128, 2048} and set(pre["prefix_len"]) == {0}


def test_comm_sources_units_and_shared_nccl(imported):
    db, report = imported
    comm = _rows(db, Backend.TRTLLM, "1.3.0rc20", OpKind.COMM)
    nccl = comm[comm["kernel_source"] == "nccl"]
    assert len(nccl) == 3 * 2 * 3                              # repeated sets merged, 2.23 not taken
    assert set(nccl["msg_bytes"]) == {512, 131072, 33554432}    # half elements x 2 bytes
    assert set(nccl["op"]) == {"all_reduce", "all_gather", "all_to_all"} and set(nccl["transport"]) == {"nvlink"}
    assert set(comm.loc[comm["op"] == "all_reduce", "kernel_source"]) == {"nccl", "trtllm_custom"}
    a2a = comm[comm["kernel_source"].str.startswith("trtllm_deepep_ll")]
    assert a2a["latency_ms"].min() == pytest.approx(0.071)     # 71 us -> ms
    assert set(_rows(db, Backend.VLLM, "0.24.0", OpKind.COMM)["kernel_source"]) == {"nccl"}
    backfilled = [t for t in report.tables if t.aic_table.endswith("moe_a2a_perf.parquet")]
    assert backfilled and all(t.backfilled for t in backfilled)
    assert {w.key.op: w.duplicates_merged for w in report.written if w.key.backend == Backend.TRTLLM}[OpKind.COMM] == 18


def test_skipped_tables_and_rows_are_reported(imported):
    db, report = imported
    bmm = [t for t in report.tables if "mla_bmm_perf" in t.aic_table]
    assert bmm and bmm[0].op is None and bmm[0].rows_read == 1
    moe = next(t for t in report.tables if t.aic_table.endswith("moe/trtllm/1.3.0rc20/moe_perf.parquet"))
    assert moe.rows_read == 12 and moe.rows_imported == 9
    assert dict(moe.skipped) == {"moe_dtype 'sq' has no servecast dtype": 3}
    assert set(_rows(db, Backend.TRTLLM, "1.3.0rc20", OpKind.MOE)["dtype"]) == {"fp8_block", "mxfp4", "int4"}
    meta = read_meta(db, "h200_sxm", Backend.TRTLLM, "1.3.0rc20")["imports"]["aiconfigurator-core"]
    assert any("mla_bmm_perf" in t["aic_table"] for t in meta["skipped_tables"])
    assert any(t["op"] == "gemm" and t["rows_imported"] == 12 for t in meta["tables"])


def test_reimport_replaces_and_never_duplicates(aic, tmp_path):
    db = tmp_path / "db"
    first = import_aic(aic, db)
    second = import_aic(aic, db)
    assert first.rows_written == second.rows_written
    for w in second.written:
        assert shard_paths(db, w.key) == [w.path]
        assert pq.read_metadata(w.path).num_rows == w.rows


def test_version_and_backend_selection(aic, tmp_path):
    report = import_aic(aic, tmp_path / "a", system="h200_sxm", version="1.3.0rc23")
    assert {(w.key.backend, w.key.version, w.key.op) for w in report.written} == {
        (Backend.TRTLLM, "1.3.0rc23", OpKind.GEMM), (Backend.TRTLLM, "1.3.0rc23", OpKind.COMM)}
    report = import_aic(aic, tmp_path / "b", backends=(Backend.VLLM,))
    assert {w.key.backend for w in report.written} == {Backend.VLLM}
    with pytest.raises(NotFoundError, match="1.3.0rc20"):
        import_aic(aic, tmp_path / "c", version="9.9")


def test_bad_input_errors_and_nothing_written(aic, tmp_path):
    with pytest.raises(InputError, match="not an AIConfigurator systems folder"):
        import_aic(tmp_path, tmp_path / "x")
    with pytest.raises(NotFoundError, match="available: h200_sxm, l40s"):
        import_aic(aic, tmp_path / "x", system="b200_sxm")
    with pytest.raises(NotFoundError, match="no servecast system spec"):
        import_aic(aic, tmp_path / "x", system="l40s")
    (aic / "data/h200_sxm/moe/trtllm/1.3.0rc20/moe_perf.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="moe_perf.parquet"):
        import_aic(aic, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_wheel_and_package_root_are_accepted(tmp_path):
    wheel = build_wheel(tmp_path / "src", tmp_path)
    report = import_aic(wheel, tmp_path / "db", system="h200_sxm")
    assert report.collector_version == "aiconfigurator-core 0.12.0"
    gemm = _rows(tmp_path / "db", Backend.TRTLLM, "1.3.0rc20", OpKind.GEMM)
    assert set(gemm["collector_version"]) == {"aiconfigurator-core 0.12.0"}
    root_report = import_aic(tmp_path / "src", tmp_path / "db2", system="h200_sxm")
    assert root_report.rows_written == report.rows_written
    with pytest.raises(NotFoundError, match="available: h200_sxm, l40s"):
        import_aic(wheel, tmp_path / "db3", system="b200_sxm")
    with pytest.raises(InputError, match="not a readable wheel"):
        bad = tmp_path / "bad.whl"
        bad.write_bytes(b"nope")
        import_aic(bad, tmp_path / "db3")


def test_cli_import_reports_tables(aic, tmp_path):
    from servecast.cli import app

    result = CliRunner().invoke(app, ["db", "import-aic", str(aic), "--out", str(tmp_path / "db"), "--system", "h200_sxm"],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "gemm" in result.output and "mla_bmm_perf" in result.output and "'sq'" in result.output
    assert np.isfinite(read_table(tmp_path / "db", TableKey("h200_sxm", Backend.TRTLLM, "1.3.0rc20", OpKind.GEMM))
                       .column("sol_ms").to_numpy()).all()


def test_cli_bad_directory_is_one_line_error(tmp_path):
    proc = subprocess.run([sys.executable, "-c", "from servecast.cli import main; main()", "db", "import-aic",
                           str(tmp_path), "--out", str(tmp_path / "db")], capture_output=True, text=True)
    assert proc.returncode != 0
    assert proc.stderr.strip().count("\n") == 0 and "not an AIConfigurator systems folder" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_version_all_keeps_versions_apart_and_copies_nccl(aic, tmp_path):
    report = import_aic(aic, tmp_path / "db", system="h200_sxm", version="all", backends=(Backend.TRTLLM,))
    got = {(w.key.version, w.key.op) for w in report.written}
    assert {("1.3.0rc20", OpKind.GEMM), ("1.3.0rc23", OpKind.GEMM), ("1.3.0rc11", OpKind.COMM)} <= got
    rc23 = read_table(tmp_path / "db", TableKey("h200_sxm", Backend.TRTLLM, "1.3.0rc23", OpKind.GEMM))
    assert rc23.num_rows == 2 and set(rc23.column("backend_version").to_pylist()) == {"1.3.0rc23"}
    assert not any(t.backfilled for t in report.tables)
    for version in ("1.3.0rc11", "1.3.0rc20", "1.3.0rc23"):
        comm = read_table(tmp_path / "db", TableKey("h200_sxm", Backend.TRTLLM, version, OpKind.COMM))
        assert "nccl" in set(comm.column("kernel_source").to_pylist())


def test_reimport_leaves_collector_shards_alone(aic, tmp_path):
    db = tmp_path / "db"
    import_aic(aic, db, system="h200_sxm")
    key = TableKey("h200_sxm", Backend.TRTLLM, "1.3.0rc20", OpKind.GEMM)
    collected = shard_paths(db, key)[0].with_name("part-gpu01-4242-0.parquet")
    collected.write_bytes(shard_paths(db, key)[0].read_bytes())
    import_aic(aic, db, system="h200_sxm")
    assert collected.exists() and len(shard_paths(db, key)) == 2
