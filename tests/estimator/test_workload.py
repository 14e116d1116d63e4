import numpy as np
import pytest

from estimator.workload import BENCH_REQUESTS_PER_CONCURRENCY, Workload
from perfdb.errors import InputError


def test_benchmark_sends_the_closed_loop_request_count():
    w = Workload.benchmark(4000, 500, concurrency=16)
    assert w.num_requests == 16 * BENCH_REQUESTS_PER_CONCURRENCY


@pytest.mark.parametrize("kwargs, named", [
    (dict(isl=0, osl=10), "isl=0"),
    (dict(isl=10, osl=-1), "osl=-1"),
    (dict(isl=10, osl=10, concurrency=-4), "concurrency=-4"),
    (dict(isl=10, osl=10, concurrency=0), "concurrency=0"),
    (dict(isl=10, osl=10, prefix=10), "prefix=10"),
    (dict(isl=10, osl=10, prefix=-1), "prefix=-1"),
    (dict(isl=np.array([10, 20]), osl=10, concurrency=np.array([4, 0])), "concurrency"),
])
def test_invalid_load_is_rejected_naming_the_field(kwargs, named):
    with pytest.raises(InputError, match=named.split("=")[0]):
        Workload(**kwargs)


def test_vectorised_valid_load_is_accepted():
    w = Workload(isl=np.array([128, 4096]), osl=np.array([1, 500]), prefix=np.array([0, 4095]),
                 concurrency=np.array([1.0, 0.5]))
    assert w.isl.shape == (2,)
