import pytest

from collectors import device
from perfdb.errors import NotFoundError


@pytest.mark.parametrize("name,system", [
    ("NVIDIA H100 80GB HBM3", "h100_sxm"), ("NVIDIA H200", "h200_sxm"), ("NVIDIA B200", "b200_sxm"),
    ("NVIDIA GB200", "gb200"), ("NVIDIA A100-SXM4-80GB", "a100_sxm"), ("NVIDIA H100 PCIe", None),
])
def test_system_detected_from_gpu_name(name, system):
    assert device.detect_system(name) == system


def test_cpu_probe_files_rows_under_cpu_host_with_the_cpu_model():
    info = device.probe("cpu")
    assert info.detected_system == "cpu_host" and info.gpu_name and len(info.serial_hash) == 12
    assert device.resolve_system(info, None) == "cpu_host"
    assert device.resolve_system(info, "h100_sxm") == "h100_sxm"
    with pytest.raises(NotFoundError, match="known systems"):
        device.resolve_system(info, "h999")


def test_unknown_gpu_needs_an_override():
    info = device.DeviceInfo("cuda", 0, "NVIDIA H100 PCIe", "", "", None)
    with pytest.raises(NotFoundError, match="--system"):
        device.resolve_system(info, None)


def test_flags_from_health_snapshots():
    clean = device.Health(1980.0, 2619.0, 300.0, (), 0)
    hot = device.Health(1500.0, 2619.0, 700.0, ("hw_slowdown",), 0)
    shared = device.Health(1980.0, 2619.0, 300.0, (), 2)
    assert device.flags(clean, clean) == ""
    assert device.flags(clean, hot) == "throttled"
    assert device.flags(shared, hot) == "throttled,shared_gpu"
    assert device.mean_clock(clean, hot) == pytest.approx(1740.0)
    assert device.health(device.probe("cpu"), 1).sm_clock_mhz is None
