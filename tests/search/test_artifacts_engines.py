"""Generated launch flags against each engine's argument names, YAML that parses and carries the plan,
Dynamo manifests, the aiperf command and the deployment spec.

Where the argument lists come from (flag names only, written down here):
  vLLM 0.34.0 (PyPI wheel): vllm/engine/arg_utils.py option strings (`vllm serve` takes EngineArgs plus
    the frontend's --host/--port and serve's --headless).
  SGLang 0.5.23 (PyPI wheel): sglang/srt/arg_groups/fields/*.py, ServerArgs fields turned into
    `--field-name` plus their `aliases`.
  TensorRT-LLM: tests/search/engine_keys/trtllm.txt (read from TensorRT-LLM's source; see its header).
  aiperf: ai-dynamo/aiperf@db4f6397 aiperf/common/config/*.py option strings.
  Dynamo 1.6.1 (PyPI ai-dynamo): dynamo/{vllm,trtllm}/backend_args.py, dynamo/frontend/frontend_args.py.
The real parsers run in test_engine_parsers.py (`pytest -m engines`).
"""
import pytest
import yaml
from artifact_cases import ALL_CASES, DENSE, MOE, MOE_SETTINGS, SETTINGS, agg, disagg, key_list

from perfdb.errors import DataError, InputError
from perfdb.types import Backend, Dtype
from search.artifacts.aiperf import aiperf_command
from search.artifacts.deployment import DeploymentSpec, load_deployment
from search.artifacts.dynamo import check_tag, manifests
from search.artifacts.engine_trtllm import options as trtllm_options
from search.artifacts.engines import Role
from search.artifacts.launch import launch_plan
from search.artifacts.writer import write_candidate
from search.types import Mode, Sla, WorkerSetup

VLLM_ARGS = {"--tensor-parallel-size", "--pipeline-parallel-size", "--data-parallel-size", "--enable-expert-parallel",
             "--max-num-seqs", "--max-num-batched-tokens", "--gpu-memory-utilization", "--kv-cache-dtype",
             "--max-model-len", "--enable-chunked-prefill", "--kv-transfer-config", "--served-model-name",
             "--enable-prefix-caching", "--host", "--port", "--model", "--nnodes", "--node-rank", "--master-addr",
             "--master-port", "--headless", "--mamba-ssm-cache-dtype"}
SGLANG_ARGS = {"--model-path", "--model", "--tp-size", "--tensor-parallel-size", "--pp-size",
               "--pipeline-parallel-size", "--attn-dp-size", "--attention-data-parallel-size",
               "--ep-size", "--expert-parallel-size", "--max-running-requests", "--chunked-prefill-size",
               "--mem-fraction-static", "--kv-cache-dtype", "--context-length", "--disaggregation-mode",
               "--disaggregation-transfer-backend", "--disaggregation-bootstrap-port", "--host", "--port",
               "--served-model-name", "--nnodes", "--node-rank", "--dist-init-addr", "--mamba-ssm-dtype",
               "--max-mamba-cache-size"}
SGLANG_DEPRECATED = {"--enable-dp-attention", "--dp-size"}    # 0.5.23: `--attn-dp-size N` instead
ROUTER_ARGS = {"--pd-disaggregation", "--vllm-pd-disaggregation", "--prefill", "--decode", "--worker-urls", "--host",
               "--port", "--backend"}   # sglang_router 0.3.2 / vllm_router 0.1.17 router_args.py
AIPERF_ARGS = {"--model", "--url", "--endpoint-type", "--streaming", "--concurrency", "--synthetic-input-tokens-mean",
               "--synthetic-input-tokens-stddev", "--output-tokens-mean", "--output-tokens-stddev", "--extra-inputs",
               "--request-count", "--warmup-request-count", "--artifact-dir", "--prefix-prompt-length",
               "--num-prefix-prompts", "--random-seed", "--tokenizer"}
DYNAMO_EXTRA = {"--disaggregation-mode"}
DYNAMO_TRTLLM_ARGS = {"--model", "--served-model-name", "--extra-engine-args", "--disaggregation-mode"}


def _flags(argv):
    return {a for a in argv if a.startswith("--")}


def _engine_flags(backend, argv) -> set:
    if backend == Backend.TRTLLM:
        serve = argv[argv.index("trtllm-serve"):]
        return _flags(serve)
    return _flags(argv)


@pytest.mark.parametrize("backend,name,c,s", ALL_CASES, ids=[f"{b.value}-{n}" for b, n, _, _ in ALL_CASES])
def test_every_command_uses_the_engines_current_flags(backend, name, c, s):
    lp = launch_plan(c, s, 8)
    serve, deprecated = key_list("serve")
    allowed = {Backend.VLLM: VLLM_ARGS, Backend.SGLANG: SGLANG_ARGS, Backend.TRTLLM: serve}[backend]
    router = lp.router.command if lp.router else None
    for cmd in lp.commands:
        if not cmd.argv:
            continue
        if cmd is router:
            if cmd.argv[:2] == ("trtllm-serve", "disaggregated"):
                assert set(a for a in cmd.argv[2:] if a.startswith("-")) <= key_list("disaggregated")[0]
            else:
                assert _flags(cmd.argv) <= ROUTER_ARGS
            continue
        flags = _engine_flags(backend, list(cmd.argv))
        assert flags <= allowed, flags - allowed
        assert not flags & (deprecated | SGLANG_DEPRECATED)


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("parallel,settings", [(DENSE, SETTINGS), (MOE, MOE_SETTINGS)])
def test_trtllm_yaml_keys_are_llm_api_fields_and_none_deprecated(role, parallel, settings):
    opts = trtllm_options(WorkerSetup(parallel, 1, 128, 8192), role, settings)
    top, deprecated = key_list("llm_args")
    assert set(opts) <= top and not set(opts) & deprecated       # no `backend:` (deprecated)
    for nested in ("kv_cache_config", "cuda_graph_config", "cache_transceiver_config", "moe_config"):
        if nested in opts:
            keys, old = key_list(nested)
            assert set(opts[nested]) <= keys and not set(opts[nested]) & old
    if "moe_config" in opts:
        assert opts["moe_config"]["backend"] in key_list("moe_config.backend")[0]


@pytest.mark.parametrize(("system", "model", "backend"), [
    ("b200_sxm", "nvidia/DeepSeek-V3.1-NVFP4", "TRTLLM"),   # nvfp4 experts on Blackwell: trtllm-gen, as priced
    ("gb200", "nvidia/DeepSeek-V3.1-NVFP4", "TRTLLM"),
    ("h200_sxm", "deepseek-ai/DeepSeek-R1", None),             # one kernel per format there: the engine's default
    ("b200_sxm", "deepseek-ai/DeepSeek-R1", None),             # block-FP8 experts: DeepGEMM's rows only
])
def test_trtllm_launches_the_moe_kernel_the_plan_priced(system, model, backend):
    """The lookup prices a shape two kernels time at the faster (TensorRT-LLM nvfp4 MoE on SM100: trtllm-gen
    beside CUTLASS, perfdb.interp); the plan's TensorRT-LLM launch file names that backend
    (EngineProfile.moe_launch) so that it is what runs, whatever the engine's default."""
    from types import SimpleNamespace

    from estimator.models import load_model
    from perfdb.specs import load_system
    from search.artifacts.engines import settings_for

    request = SimpleNamespace(model=model, isl=1000, osl=100, kv_dtype=None)
    s = settings_for(request, load_model(model), load_system(system), agg(Backend.TRTLLM, MOE))
    opts = trtllm_options(WorkerSetup(MOE, 1, 128, 8192), Role.AGG, s)
    assert opts.get("moe_config", {}).get("backend") == backend


def test_launch_flags_carry_the_parallelism_and_limits():
    w = WorkerSetup(MOE, 1, 256, 8192)
    (vllm,) = launch_plan(agg(Backend.VLLM, MOE), MOE_SETTINGS, 8).commands
    vllm = list(vllm.argv)
    assert vllm[vllm.index("--data-parallel-size") + 1] == "8" and "--enable-expert-parallel" in vllm
    assert vllm[vllm.index("--max-num-seqs") + 1] == "8"           # 64 per replica, per DP engine core
    sgl = list(launch_plan(disagg(Backend.SGLANG), MOE_SETTINGS, 8).commands[-2].argv)   # last decode worker
    assert sgl[sgl.index("--tp-size") + 1] == "8" and sgl[sgl.index("--ep-size") + 1] == "8"
    assert sgl[sgl.index("--attn-dp-size") + 1] == "8" and "--enable-dp-attention" not in sgl
    assert sgl[sgl.index("--max-running-requests") + 1] == "256"
    assert sgl[sgl.index("--disaggregation-mode") + 1] == "decode"
    opts = trtllm_options(w, Role.PREFILL, MOE_SETTINGS)
    assert opts["enable_attention_dp"] and opts["moe_expert_parallel_size"] == 8 and opts["max_batch_size"] == 32
    assert opts["tensor_parallel_size"] == 8 and opts["cache_transceiver_config"]["backend"] == "DEFAULT"
    dense = trtllm_options(WorkerSetup(DENSE, 1, 64, 4096), Role.AGG, SETTINGS)
    assert "moe_expert_parallel_size" not in dense and dense["pipeline_parallel_size"] == 2
    assert dense["kv_cache_config"]["dtype"] == "fp8" and dense["enable_chunked_prefill"] is True


@pytest.mark.parametrize("backend", [Backend.TRTLLM, Backend.VLLM, Backend.SGLANG])
@pytest.mark.parametrize("make", [agg, disagg])
def test_dynamo_manifests_parse_and_carry_the_deployment(backend, make):
    c = make(backend)
    settings = MOE_SETTINGS if c.mode == Mode.DISAGG else SETTINGS
    docs = list(yaml.safe_load_all(yaml.safe_dump_all(manifests(c, settings, "plan", 8, tag="1.7.0"))))
    dgd = docs[-1]
    assert dgd["apiVersion"] == "nvidia.com/v1alpha1" and dgd["kind"] == "DynamoGraphDeployment"
    services = dgd["spec"]["services"]
    front = services["Frontend"]["extraPodSpec"]["mainContainer"]
    assert services["Frontend"]["componentType"] == "frontend" and front["image"].endswith(":1.7.0")
    assert front["command"] == ["python3", "-m", "dynamo.frontend"] and front["args"] == ["--http-port", "8000"]
    workers = {k: v for k, v in services.items() if v["componentType"] == "worker"}
    if c.mode == Mode.AGG:
        (w,) = workers.values()
        assert w["replicas"] == 1 and w["resources"]["limits"]["gpu"] == "8" and "subComponentType" not in w
    else:
        by_role = {w["subComponentType"]: w for w in workers.values()}
        assert by_role["prefill"]["replicas"] == 2 and by_role["decode"]["replicas"] == 6   # x copies
        assert all(w["resources"]["limits"]["gpu"] == "8" for w in by_role.values())
    for w in workers.values():
        main = w["extraPodSpec"]["mainContainer"]
        args, role = main["args"], w.get("subComponentType")
        assert main["image"].endswith(":1.7.0")
        allowed = {Backend.VLLM: VLLM_ARGS | DYNAMO_EXTRA, Backend.TRTLLM: DYNAMO_TRTLLM_ARGS,
                   Backend.SGLANG: SGLANG_ARGS}[backend]
        assert _flags(args) <= allowed
        if role:
            assert args[args.index("--disaggregation-mode") + 1] == role
        if backend == Backend.VLLM and role:   # Dynamo 1.6 refuses a prefill worker without it
            kv = args[args.index("--kv-transfer-config") + 1]
            assert ("kv_producer" if role == "prefill" else "kv_consumer") in kv
    if backend == Backend.TRTLLM:
        cm = docs[0]
        assert cm["kind"] == "ConfigMap"
        for text in cm["data"].values():
            assert yaml.safe_load(text)["max_num_tokens"] in (8192, 16384)


def test_dynamo_version_must_be_an_image_tag():
    assert check_tag("1.6.1") == "1.6.1"
    for bad in ("", "1.6 1", "a/b", "-x", "1.6.1;rm"):
        with pytest.raises(InputError, match="not an image tag"):
            check_tag(bad)


def test_aiperf_command_uses_documented_flags_and_the_predicted_load():
    cmd = aiperf_command("m", "http://localhost:8000", 72.4, 4000, 500, 1000, "out")
    assert cmd[:2] == ["aiperf", "profile"] and _flags(cmd) <= AIPERF_ARGS
    assert cmd[cmd.index("--concurrency") + 1] == "73"
    assert cmd[cmd.index("--synthetic-input-tokens-mean") + 1] == "3000"
    assert cmd[cmd.index("--prefix-prompt-length") + 1] == "1000"
    assert cmd[cmd.index("--output-tokens-mean") + 1] == "500"


def test_aiperf_spreads_the_lengths_as_the_plan_replayed_them(tmp_path):
    """The plan's replays draw lengths uniform in [x(1-r), x(1+r)]; aiperf's synthetic lengths are normal, so
    aiperf.sh asks for the same standard deviation, r x / sqrt(3) (of the unshared input); deployment.yaml
    keeps r, which `servecast simulate --plan` replays by default."""
    from search.types import INFERENCEX_RANGE_RATIO

    r = INFERENCEX_RANGE_RATIO
    cmd = aiperf_command("m", "http://localhost:8000", 8, 4000, 500, 1000, "out", r)
    assert cmd[cmd.index("--synthetic-input-tokens-stddev") + 1] == str(round(r * 3000 / 3 ** 0.5)) == "192"
    assert cmd[cmd.index("--output-tokens-stddev") + 1] == str(round(r * 500 / 3 ** 0.5)) == "32"
    fixed = aiperf_command("m", "http://localhost:8000", 8, 4000, 500, 0, "out")
    assert fixed[fixed.index("--synthetic-input-tokens-stddev") + 1] == fixed[fixed.index("--output-tokens-stddev") + 1] == "0"
    out = write_candidate(tmp_path, disagg(Backend.TRTLLM), 1, "b200_sxm", 8, 15000, 500, 0, Sla(1000, 15),
                          MOE_SETTINGS, moe_quant="nvfp4", range_ratio=r)
    assert load_deployment(out / "deployment.yaml").range_ratio == pytest.approx(r, abs=1e-4)
    assert f"--output-tokens-stddev {round(r * 500 / 3 ** 0.5)}" in (out / "aiperf.sh").read_text()


def test_candidate_directory_has_parsable_artifacts_and_a_round_tripping_spec(tmp_path):
    out = write_candidate(tmp_path, disagg(Backend.TRTLLM), 1, "b200_sxm", 8, 15000, 500, 0, Sla(1000, 15),
                          MOE_SETTINGS, moe_quant="nvfp4")
    spec = load_deployment(out / "deployment.yaml")
    assert spec.mode == Mode.DISAGG and spec.backend == Backend.TRTLLM and spec.concurrency == 73
    roles = {w.role: w for w in spec.workers}
    assert roles[Role.PREFILL].count == 2 and roles[Role.DECODE].count == 6
    assert roles[Role.DECODE].parallel == MOE and roles[Role.DECODE].max_batch == 256
    assert DeploymentSpec.from_dict(spec.to_dict()) == spec
    for name in ("prefill.yaml", "decode.yaml"):
        opts = yaml.safe_load((out / name).read_text())
        assert opts["tensor_parallel_size"] == 8 and opts["moe_expert_parallel_size"] == 8 and "backend" not in opts
    config = yaml.safe_load((out / "disagg.yaml").read_text())
    assert set(config) <= key_list("disagg_config")[0]
    assert config["context_servers"]["num_instances"] == 2 and config["generation_servers"]["num_instances"] == 6
    launch = (out / "launch.sh").read_text()
    assert launch.count("trtllm-serve deepseek-ai") == 8 and "--extra_llm_api_options prefill.yaml" in launch
    assert "trtllm-serve disaggregated -c" in launch
    assert "--concurrency 73" in (out / "aiperf.sh").read_text()
    assert list(yaml.safe_load_all((out / "k8s" / "dynamo.yaml").read_text()))[-1]["kind"] == "DynamoGraphDeployment"


def test_the_spec_is_readable_by_the_calibration(tmp_path):
    deployment = pytest.importorskip("calibrate.deployment", reason="calibration spec reader not present")
    out = write_candidate(tmp_path, agg(Backend.VLLM), 1, "h200_sxm", 8, 4000, 500, 0, Sla(600, 16.67), SETTINGS)
    dep = deployment.load_spec(out / "deployment.yaml")
    assert dep.model == "Qwen/Qwen3-32B-FP8" and dep.backend == Backend.VLLM and dep.mode.value == "agg"
    assert dep.agg.parallel == DENSE and dep.agg.workers == 1 and dep.engine.max_num_tokens == 8192


def test_spec_rejects_other_files(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text("format: something-else\n")
    with pytest.raises(DataError, match="servecast-deployment"):
        load_deployment(p)
    assert p.exists()


def test_hybrid_models_size_the_mamba_state_pool():
    from dataclasses import replace

    from search.artifacts import engine_sglang, engine_vllm

    hybrid = replace(MOE_SETTINGS, model="Qwen/Qwen3.5-397B-A17B", mamba_ssm_dtype="float32")
    w = WorkerSetup(MOE, workers=1, max_batch=96, max_num_tokens=8192)
    sgl = engine_sglang.serve_args(w, Role.AGG, hybrid)
    assert sgl[sgl.index("--max-mamba-cache-size") + 1] == "96" and sgl[sgl.index("--mamba-ssm-dtype") + 1] == "float32"
    vllm = engine_vllm.serve_args(w, Role.AGG, hybrid)
    assert vllm[vllm.index("--mamba-ssm-cache-dtype") + 1] == "float32"
    assert trtllm_options(w, Role.AGG, hybrid)["kv_cache_config"]["mamba_ssm_cache_dtype"] == "float32"
    assert "--mamba-ssm-dtype" not in engine_sglang.serve_args(w, Role.AGG, MOE_SETTINGS)


def test_kv_cache_dtype_flag_is_each_engines_own_spelling():
    """An FP8 cache in each engine's words; a bf16 cache of a model whose auto means FP8 there (DeepSeek-V4 on
    SGLang / vLLM, estimator.engine.kv_cache_dtype) says bfloat16, else auto (SGLang 0.5.23 fields/model.py
    and vLLM 0.34.0 config/cache.py CacheDType accept fp8_e4m3 / fp8 and bfloat16)."""
    from dataclasses import replace

    from search.artifacts import engine_sglang, engine_vllm

    def flags(s):
        sgl, vllm = engine_sglang.serve_args(w, Role.AGG, s), engine_vllm.serve_args(w, Role.AGG, s)
        return (sgl[sgl.index("--kv-cache-dtype") + 1], vllm[vllm.index("--kv-cache-dtype") + 1],
                trtllm_options(w, Role.AGG, s)["kv_cache_config"]["dtype"])

    w = WorkerSetup(MOE, workers=1, max_batch=64, max_num_tokens=8192)
    v4 = replace(MOE_SETTINGS, model="deepseek-ai/DeepSeek-V4-Pro", kv_dtype=Dtype.FP8, kv_auto=Dtype.FP8)
    assert flags(v4) == ("fp8_e4m3", "fp8", "fp8")
    assert flags(replace(v4, kv_dtype=Dtype.BF16))[:2] == ("bfloat16", "bfloat16")
    assert flags(MOE_SETTINGS) == ("auto", "auto", "auto")
