"""A real local Ray cluster: cases fan out as tasks (num_cpus=1 each on CPU) and land in one database."""
import pytest

from collectors import fleet
from collectors.plan import make_plan
from collectors.registry import GridSize
from perfdb.storage import TableKey, read_table
from perfdb.types import Backend, OpKind

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_tasks_fill_one_database_and_resume(local_ray, tmp_path, cpu_session):
    cases = list(make_plan([OpKind.ELEMENTWISE, OpKind.GEMM], GridSize.TINY, cpu_session.ctx, cpu_session.spec,
                           cpu_session.timer).cases)
    summary = fleet.run_on_ray("local", cases, tmp_path, cpu_session, chunk_cases=6)
    assert summary.measured + summary.failed == len(cases) and summary.remaining == 0
    assert summary.failed >= 1 and summary.failures_file.is_file()  # nvfp4 on CPU
    assert len(summary.shards) >= 3  # one shard per finished task and table
    version = cpu_session.prov.backend_version
    rows = read_table(tmp_path, TableKey("cpu_host", Backend.TORCH, version, OpKind.ELEMENTWISE)).to_pandas()
    assert len(rows) == len(rows.drop_duplicates(["op", "hidden", "num_tokens"])) == 18   # 6 ops x 3 sizes
    again = fleet.run_on_ray("local", cases, tmp_path, cpu_session)
    assert (again.measured, again.failed, again.skipped) == (0, 0, len(cases))
