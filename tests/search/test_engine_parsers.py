"""Every command a plan writes, parsed by the engine's own parser where it imports without a GPU
(`pytest -m engines`, run where vLLM / SGLang / the routers are installed; versions in BENCHMARKS.md):

- vLLM: `vllm serve`'s parser (vllm.entrypoints.common.cli_args.make_arg_parser: EngineArgs plus the
  frontend's --host/--port/--headless), VLLM_TARGET_DEVICE=cpu; the Dynamo worker args through
  EngineArgs after Dynamo's own --disaggregation-mode;
- SGLang: ServerArgs.add_cli_args's argparse, for launch.sh's commands and the Dynamo worker args;
- routers: sglang_router / vllm_router `launch_router.parse_router_args`, which also validate the
  PD layout (RouterArgs.from_cli_args);
- TensorRT-LLM (no GPU-free install): its option names and YAML keys against
  engine_keys/trtllm.txt, in test_artifacts_engines.py, always.
Each engine's part skips itself when that engine is not importable; the marker skips the whole file
when none is (tests/conftest.py)."""
from __future__ import annotations

import argparse
import importlib.util
import os

import pytest
from artifact_cases import ALL_CASES, addresses

from perfdb.types import Backend
from search.artifacts.dynamo import manifests
from search.artifacts.launch import launch_plan

pytestmark = pytest.mark.engines
IDS = [f"{b.value}-{n}" for b, n, _, _ in ALL_CASES]


def _have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _commands(c, s):
    """The launch plan and its (command, argv with node addresses filled in), router last."""
    lp = launch_plan(c, s, 8)
    return lp, [(cmd, tuple(addresses(a) for a in cmd.argv)) for cmd in lp.commands if cmd.argv]


def _dynamo_args(c, s) -> list[list[str]]:
    dgd = manifests(c, s, "plan", 8)[-1]
    return [svc["extraPodSpec"]["mainContainer"]["args"] for svc in dgd["spec"]["services"].values()
            if svc["componentType"] == "worker"]


def _without(args: list[str], flag: str) -> list[str]:
    if flag not in args:
        return args
    i = args.index(flag)
    return args[:i] + args[i + 2:]


@pytest.fixture(scope="module")
def vllm_parser():
    if not _have("vllm"):
        pytest.skip("vLLM not installed")
    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
    from vllm.entrypoints.common.cli_args import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    return make_arg_parser(FlexibleArgumentParser())


@pytest.fixture(scope="module")
def sglang_parser():
    if not _have("sglang"):
        pytest.skip("SGLang not installed")
    from sglang.srt.server_args import ServerArgs

    parser = argparse.ArgumentParser(exit_on_error=False)
    ServerArgs.add_cli_args(parser)
    return parser


def _strict(parser, argv: list[str]):
    """parse_args, failing the test (not exiting) on any unknown or malformed argument."""
    ns, unknown = parser.parse_known_args(argv)
    assert not unknown, f"not accepted: {unknown}"
    return ns


VLLM = [case for case in ALL_CASES if case[0] == Backend.VLLM]
SGLANG = [case for case in ALL_CASES if case[0] == Backend.SGLANG]


@pytest.mark.parametrize("backend,name,c,s", VLLM, ids=[i for i in IDS if i.startswith("vllm")])
def test_vllm_commands_parse_with_vllm_serve(vllm_parser, backend, name, c, s):
    lp, cmds = _commands(c, s)
    for cmd, argv in cmds:
        if argv[0] != "vllm":
            continue
        ns = _strict(vllm_parser, list(argv[2:]))
        p = lp.placements[cmd.worker]
        assert (ns.tensor_parallel_size, ns.pipeline_parallel_size) == (p.worker.parallel.tp, p.worker.parallel.pp)
        assert ns.data_parallel_size == p.worker.parallel.attn_dp
        if p.role.value != "agg":
            assert ns.kv_transfer_config.kv_connector == "NixlConnector"
            assert ns.kv_transfer_config.kv_role == ("kv_producer" if p.role.value == "prefill" else "kv_consumer")
        if p.multinode:
            assert ns.nnodes == len(p.nodes) and ns.master_addr.startswith("10.0.0.")
    for args in _dynamo_args(c, s):
        _strict(vllm_parser, _without(list(args), "--disaggregation-mode"))


@pytest.mark.parametrize("backend,name,c,s", SGLANG, ids=[i for i in IDS if i.startswith("sglang")])
def test_sglang_commands_parse_with_server_args(sglang_parser, backend, name, c, s):
    lp, cmds = _commands(c, s)
    for _, argv in cmds:
        if argv[:3] != ("python", "-m", "sglang.launch_server"):
            continue
        ns = _strict(sglang_parser, list(argv[3:]))
        assert ns.model_path == s.model and ns.tp_size >= 1
        if "--attn-dp-size" in argv:
            assert ns.attn_dp_size == int(argv[argv.index("--attn-dp-size") + 1])
        if ns.nnodes > 1:
            assert ns.dist_init_addr.startswith("10.0.0.")
    for args in _dynamo_args(c, s):
        _strict(sglang_parser, list(args))


@pytest.mark.parametrize("backend,name,c,s", [case for case in ALL_CASES if case[0] != Backend.TRTLLM
                                              or case[2].mode.value == "agg"],
                         ids=[i for (b, n, c, _), i in zip(ALL_CASES, IDS, strict=True)
                              if b != Backend.TRTLLM or c.mode.value == "agg"])
def test_router_commands_parse_with_the_routers_own_parser(backend, name, c, s):
    lp, cmds = _commands(c, s)
    if lp.router is None:
        return
    argv = list(cmds[-1][1])
    if argv[0] == "vllm-router":
        if not _have("vllm_router"):
            pytest.skip("vllm-router not installed")
        from vllm_router.launch_router import parse_router_args

        args = parse_router_args(argv[1:])
        pd = args.vllm_pd_disaggregation
    else:
        if not _have("sglang_router"):
            pytest.skip("sglang-router not installed")
        from sglang_router.launch_router import parse_router_args

        args = parse_router_args(argv[3:])
        pd = args.pd_disaggregation
    assert args.port == s.port
    if pd:
        assert len(args.prefill_urls) == sum(p.role.value == "prefill" for p in lp.placements)
        assert len(args.decode_urls) == sum(p.role.value == "decode" for p in lp.placements)
    else:
        assert len(args.worker_urls) == len(lp.placements)
