"""Generated launch flags against each engine's documented argument names, YAML that parses and
carries the plan, Dynamo manifests, the aiperf command and the deployment spec.

Where the argument lists come from (flag names only, written down here):
  vLLM 0.33.0 (PyPI wheel vllm-0.33.0-cp38-abi3-manylinux_2_28_x86_64.whl): vllm/engine/arg_utils.py,
    the `"--..."` option strings (`vllm serve` takes EngineArgs plus the frontend's --host/--port);
    https://docs.vllm.ai/en/latest/configuration/engine_args.html
  SGLang 0.5.23 (PyPI wheel): sglang/srt/arg_groups/fields/*.py, ServerArgs fields turned into
    `--field-name` by add_cli_args_from_dataclass plus their `aliases`;
    https://docs.sglang.ai/advanced_features/server_arguments.html
  TensorRT-LLM: tensorrt_llm/commands/serve.py (`trtllm-serve serve` click options, NVIDIA/TensorRT-LLM
    main as stored) and the LLM-API keys of TorchLlmArgs used by Dynamo's engine configs
    (ai-dynamo/dynamo examples/backends/trtllm/engine_configs/qwen3/decode.yaml).
  aiperf: ai-dynamo/aiperf@db4f6397 aiperf/common/config/*.py option strings.
  Dynamo: ai-dynamo/dynamo examples/backends/{vllm,trtllm}/deploy/{agg,disagg}.yaml (DynamoGraphDeployment).
"""
import argparse
import shlex
from pathlib import Path

import pytest
import yaml

from estimator.parallel import ParallelConfig
from perfdb.types import Backend, Dtype, Source
from search.artifacts.aiperf import aiperf_command
from search.artifacts.deployment import DeploymentSpec, load_deployment
from search.artifacts.dynamo import manifests
from search.artifacts.engines import EngineSettings, Role, launch_command, trtllm_options
from search.artifacts.writer import write_candidate
from search.types import Candidate, Metrics, Mode, Sla, WorkerSetup

VLLM_ARGS = {"--tensor-parallel-size", "--pipeline-parallel-size", "--data-parallel-size", "--enable-expert-parallel",
             "--max-num-seqs", "--max-num-batched-tokens", "--gpu-memory-utilization", "--kv-cache-dtype",
             "--max-model-len", "--enable-chunked-prefill", "--kv-transfer-config", "--served-model-name",
             "--enable-prefix-caching", "--host", "--port", "--model", "--mamba-ssm-cache-dtype"}
SGLANG_ARGS = {"--model-path", "--model", "--tp-size", "--tensor-parallel-size", "--pp-size",
               "--pipeline-parallel-size", "--dp-size", "--data-parallel-size", "--enable-dp-attention",
               "--ep-size", "--expert-parallel-size", "--ep", "--moe-dense-tp-size", "--max-running-requests",
               "--chunked-prefill-size", "--mem-fraction-static", "--kv-cache-dtype", "--context-length",
               "--disaggregation-mode", "--disaggregation-transfer-backend", "--disaggregation-bootstrap-port",
               "--host", "--port", "--served-model-name", "--trust-remote-code", "--enable-mixed-chunk",
               "--mamba-ssm-dtype", "--max-mamba-cache-size"}
TRTLLM_SERVE_ARGS = {"--tokenizer", "--host", "--port", "--backend", "--log_level", "--max_beam_width",
                     "--max_batch_size", "--max_num_tokens", "--max_seq_len", "--tensor_parallel_size", "--tp_size",
                     "--pipeline_parallel_size", "--pp_size", "--context_parallel_size", "--cp_size",
                     "--moe_expert_parallel_size", "--ep_size", "--moe_cluster_parallel_size", "--cluster_size",
                     "--gpus_per_node", "--free_gpu_memory_fraction", "--kv_cache_free_gpu_memory_fraction",
                     "--num_postprocess_workers", "--trust_remote_code", "--revision", "--config",
                     "--extra_llm_api_options", "--reasoning_parser", "--server_role", "--enable_chunked_prefill"}
TRTLLM_YAML_KEYS = {"backend", "tensor_parallel_size", "pipeline_parallel_size", "moe_expert_parallel_size",
                    "moe_tensor_parallel_size", "enable_attention_dp", "max_batch_size", "max_num_tokens",
                    "max_seq_len", "enable_chunked_prefill", "kv_cache_config", "cuda_graph_config",
                    "cache_transceiver_config", "disable_overlap_scheduler", "trust_remote_code"}
AIPERF_ARGS = {"--model", "--url", "--endpoint-type", "--streaming", "--concurrency", "--synthetic-input-tokens-mean",
               "--synthetic-input-tokens-stddev", "--output-tokens-mean", "--output-tokens-stddev", "--extra-inputs",
               "--request-count", "--warmup-request-count", "--artifact-dir", "--prefix-prompt-length",
               "--num-prefix-prompts", "--random-seed", "--tokenizer"}
DYNAMO_VLLM_ARGS = VLLM_ARGS | {"--model", "--disaggregation-mode"}
DYNAMO_TRTLLM_ARGS = {"--model-path", "--served-model-name", "--extra-engine-args", "--disaggregation-mode"}

MOE = ParallelConfig(tp=1, attn_dp=8, moe_tp=1, moe_ep=8)
DENSE = ParallelConfig(tp=4, pp=2)
SETTINGS = EngineSettings(model="Qwen/Qwen3-32B-FP8", max_model_len=4500, kv_dtype=Dtype.FP8, mem_fraction=0.9)
MOE_SETTINGS = EngineSettings(model="deepseek-ai/DeepSeek-R1", max_model_len=15500, kv_dtype=Dtype.BF16,
                              mem_fraction=0.85, is_moe=True)
HYBRID_SETTINGS = EngineSettings(model="Qwen/Qwen3.5-397B-A17B", max_model_len=4500, kv_dtype=Dtype.BF16,
                                 mem_fraction=0.9, is_moe=True, mamba_ssm_dtype="float32")


def _flags(argv):
    return {a for a in argv if a.startswith("--")}


def _metrics():
    return Metrics(400.0, 15.0, 7885.0, 700.0, 66.7, 72.4, 0.8, Source.ROOFLINE)


def _agg(backend=Backend.TRTLLM, parallel=DENSE):
    return Candidate(Mode.AGG, backend, "1.0", WorkerSetup(parallel, 1, 64, 8192), None, 1, 8, _metrics(), 3)


def _disagg(backend=Backend.TRTLLM, parallel=MOE):
    return Candidate(Mode.DISAGG, backend, None, WorkerSetup(parallel, 3, 256, 8192),
                     WorkerSetup(parallel, 1, 2, 16384), 2, 64, _metrics(), 7)


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("parallel,settings", [(DENSE, SETTINGS), (MOE, MOE_SETTINGS), (MOE, HYBRID_SETTINGS)])
def test_launch_flags_are_documented_engine_arguments(role, parallel, settings):
    w = WorkerSetup(parallel, 1, 128, 8192)
    assert _flags(launch_command(Backend.VLLM, w, role, settings)) <= VLLM_ARGS
    assert _flags(launch_command(Backend.SGLANG, w, role, settings)) <= SGLANG_ARGS
    assert _flags(launch_command(Backend.TRTLLM, w, role, settings)) <= TRTLLM_SERVE_ARGS
    assert set(trtllm_options(w, role, settings)) <= TRTLLM_YAML_KEYS


def test_hybrid_models_size_the_mamba_state_pool():
    w = WorkerSetup(DENSE, 1, 96, 8192)
    sgl = launch_command(Backend.SGLANG, w, Role.AGG, HYBRID_SETTINGS)
    assert sgl[sgl.index("--max-mamba-cache-size") + 1] == "96" and sgl[sgl.index("--mamba-ssm-dtype") + 1] == "float32"
    vllm = launch_command(Backend.VLLM, w, Role.AGG, HYBRID_SETTINGS)
    assert vllm[vllm.index("--mamba-ssm-cache-dtype") + 1] == "float32"
    assert trtllm_options(w, Role.AGG, HYBRID_SETTINGS)["kv_cache_config"]["mamba_ssm_cache_dtype"] == "float32"
    assert "--mamba-ssm-dtype" not in launch_command(Backend.SGLANG, w, Role.AGG, MOE_SETTINGS)


def test_launch_flags_carry_the_parallelism_and_limits():
    w = WorkerSetup(MOE, 1, 256, 8192)
    vllm = launch_command(Backend.VLLM, w, Role.AGG, MOE_SETTINGS)
    assert vllm[vllm.index("--data-parallel-size") + 1] == "8" and "--enable-expert-parallel" in vllm
    assert vllm[vllm.index("--max-num-seqs") + 1] == "32"          # per DP engine core
    sgl = launch_command(Backend.SGLANG, w, Role.DECODE, MOE_SETTINGS)
    assert sgl[sgl.index("--tp-size") + 1] == "8" and sgl[sgl.index("--ep-size") + 1] == "8"
    assert sgl[sgl.index("--max-running-requests") + 1] == "256" and "--enable-dp-attention" in sgl
    assert sgl[sgl.index("--disaggregation-mode") + 1] == "decode"
    opts = trtllm_options(w, Role.PREFILL, MOE_SETTINGS)
    assert opts["enable_attention_dp"] and opts["moe_expert_parallel_size"] == 8 and opts["max_batch_size"] == 32
    assert opts["tensor_parallel_size"] == 8 and opts["cache_transceiver_config"]["backend"] == "DEFAULT"
    dense = trtllm_options(WorkerSetup(DENSE, 1, 64, 4096), Role.AGG, SETTINGS)
    assert "moe_expert_parallel_size" not in dense and dense["pipeline_parallel_size"] == 2
    assert dense["kv_cache_config"]["dtype"] == "fp8" and dense["enable_chunked_prefill"] is True


@pytest.mark.parametrize("backend", [Backend.TRTLLM, Backend.VLLM, Backend.SGLANG])
@pytest.mark.parametrize("make", [_agg, _disagg])
def test_dynamo_manifests_parse_and_carry_the_deployment(backend, make):
    c = make(backend)
    settings = MOE_SETTINGS if c.mode == Mode.DISAGG else SETTINGS
    docs = list(yaml.safe_load_all(yaml.safe_dump_all(manifests(c, settings, "plan", gpus_per_node=8))))
    dgd = docs[-1]
    assert dgd["apiVersion"] == "nvidia.com/v1alpha1" and dgd["kind"] == "DynamoGraphDeployment"
    services = dgd["spec"]["services"]
    assert services["Frontend"]["componentType"] == "frontend"
    workers = {k: v for k, v in services.items() if v["componentType"] == "worker"}
    if c.mode == Mode.AGG:
        (w,) = workers.values()
        assert w["replicas"] == 1 and w["resources"]["limits"]["gpu"] == "8" and "subComponentType" not in w
    else:
        by_role = {w["subComponentType"]: w for w in workers.values()}
        assert by_role["prefill"]["replicas"] == 2 and by_role["decode"]["replicas"] == 6   # x copies
        assert all(w["resources"]["limits"]["gpu"] == "8" for w in by_role.values())
    for w in workers.values():
        args = w["extraPodSpec"]["mainContainer"]["args"]
        allowed = {Backend.VLLM: DYNAMO_VLLM_ARGS, Backend.TRTLLM: DYNAMO_TRTLLM_ARGS,
                   Backend.SGLANG: SGLANG_ARGS}[backend]
        assert _flags(args) <= allowed
    if backend == Backend.TRTLLM:
        cm = docs[0]
        assert cm["kind"] == "ConfigMap"
        for text in cm["data"].values():
            assert yaml.safe_load(text)["max_num_tokens"] in (8192, 16384)


def test_aiperf_command_uses_documented_flags_and_the_predicted_load():
    cmd = aiperf_command("m", "http://localhost:8000", 72.4, 4000, 500, 1000, "out")
    assert cmd[:2] == ["aiperf", "profile"] and _flags(cmd) <= AIPERF_ARGS
    assert cmd[cmd.index("--concurrency") + 1] == "73"
    assert cmd[cmd.index("--synthetic-input-tokens-mean") + 1] == "3000"
    assert cmd[cmd.index("--prefix-prompt-length") + 1] == "1000"
    assert cmd[cmd.index("--output-tokens-mean") + 1] == "500"


def test_candidate_directory_has_parsable_artifacts_and_a_round_tripping_spec(tmp_path):
    out = write_candidate(tmp_path, _disagg(), 1, "b200_sxm", 8, 15000, 500, 0, Sla(1000, 15), MOE_SETTINGS,
                          moe_quant="nvfp4")
    spec = load_deployment(out / "deployment.yaml")
    assert spec.mode == Mode.DISAGG and spec.backend == Backend.TRTLLM and spec.concurrency == 73
    roles = {w.role: w for w in spec.workers}
    assert roles[Role.PREFILL].count == 2 and roles[Role.DECODE].count == 6
    assert roles[Role.DECODE].parallel == MOE and roles[Role.DECODE].max_batch == 256
    assert DeploymentSpec.from_dict(spec.to_dict()) == spec
    for name in ("prefill.yaml", "decode.yaml"):
        opts = yaml.safe_load((out / name).read_text())
        assert opts["tensor_parallel_size"] == 8 and opts["moe_expert_parallel_size"] == 8
    launch = (out / "launch.sh").read_text()
    assert launch.count("trtllm-serve") == 8 and "--extra_llm_api_options prefill.yaml" in launch
    for line in launch.splitlines():
        if line.startswith("CUDA_VISIBLE_DEVICES"):
            assert _flags(shlex.split(line.split(" ", 1)[1].rstrip(" &"))) <= TRTLLM_SERVE_ARGS
    assert "--concurrency 73" in (out / "aiperf.sh").read_text()
    assert list(yaml.safe_load_all((out / "k8s" / "dynamo.yaml").read_text()))[-1]["kind"] == "DynamoGraphDeployment"


def test_the_spec_is_readable_by_the_calibration(tmp_path):
    deployment = pytest.importorskip("calibrate.deployment", reason="calibration spec reader not present")
    out = write_candidate(tmp_path, _agg(Backend.VLLM), 1, "h200_sxm", 8, 4000, 500, 0, Sla(600, 16.67), SETTINGS)
    dep = deployment.load_spec(out / "deployment.yaml")
    assert dep.model == "Qwen/Qwen3-32B-FP8" and dep.backend == Backend.VLLM and dep.mode.value == "agg"
    assert dep.agg.parallel == DENSE and dep.agg.workers == 1 and dep.engine.max_num_tokens == 8192


@pytest.mark.engines
def test_flags_parse_with_the_installed_engines_own_parser():
    import importlib.util

    if importlib.util.find_spec("sglang"):
        from sglang.srt.server_args import ServerArgs

        parser = argparse.ArgumentParser()
        ServerArgs.add_cli_args(parser)
        argv = launch_command(Backend.SGLANG, WorkerSetup(MOE, 1, 256, 8192), Role.DECODE, MOE_SETTINGS)
        parser.parse_args(argv[3:])
    if importlib.util.find_spec("vllm"):
        from vllm.engine.arg_utils import EngineArgs
        try:
            from vllm.utils.argparse_utils import FlexibleArgumentParser  # vLLM >= 0.11
        except ImportError:
            from vllm.utils import FlexibleArgumentParser

        parser = EngineArgs.add_cli_args(FlexibleArgumentParser())
        argv = launch_command(Backend.VLLM, WorkerSetup(MOE, 1, 256, 8192), Role.AGG, MOE_SETTINGS)
        parser.parse_args(["--model", argv[2], *[a for a in argv[3:] if a not in ("--host", "0.0.0.0", "--port", "8000")]])
    if importlib.util.find_spec("tensorrt_llm"):
        from tensorrt_llm.commands.serve import serve

        argv = launch_command(Backend.TRTLLM, WorkerSetup(DENSE, 1, 64, 8192), Role.AGG, SETTINGS)
        ctx = serve.make_context("trtllm-serve", argv[1:], resilient_parsing=True)
        assert ctx.params["tensor_parallel_size"] == 4


def test_spec_rejects_other_files(tmp_path):
    from perfdb.errors import DataError

    p = tmp_path / "x.yaml"
    p.write_text("format: something-else\n")
    with pytest.raises(DataError, match="servecast-deployment"):
        load_deployment(p)
    assert Path(p).exists()
