"""Shared test setup: hypothesis profiles, the data directory, devices."""
import os
import pathlib

import pytest
from hypothesis import HealthCheck, settings

import minigrad as mg

# Profiles: "ci" (default) keeps the suite within minutes on 2 cores; "thorough" digs deeper.
#   MINIGRAD_HYPOTHESIS_PROFILE=thorough pytest
settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("thorough", max_examples=400, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=10, deadline=None)
settings.load_profile(os.environ.get("MINIGRAD_HYPOTHESIS_PROFILE", "ci"))

# Real MNIST lives in ../shared/data on the project's machines; use it when it is there.
_shared = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
if "MINIGRAD_DATA" not in os.environ and (_shared / "mnist").is_dir():
    os.environ["MINIGRAD_DATA"] = str(_shared)


# The cuda case runs on a real GPU (CuPy), or on the emulated device: MINIGRAD_CUDA_EMULATOR=1
# puts a CuPy stand-in over the CUDA emulator (docs/emulator.md), as CI's device pass does.  It
# skips only where neither is there.
NO_CUDA = "no CUDA GPU (or CuPy) on this machine; MINIGRAD_CUDA_EMULATOR=1 runs it on the emulated device"
DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not mg.cuda_available(), reason=NO_CUDA)),
]


@pytest.fixture(params=DEVICES)
def device(request):
    """Run a test on every device; the cuda case skips with a reason when there is no GPU (and
    no emulated device)."""
    return request.param


class OnDevice:
    """The device a module's property tests run on (see ``on_device``), and how to put a NumPy
    array there: on the CPU sharing its memory (so strided and transposed layouts reach the
    ops), on the GPU as a copy."""

    name = "cpu"

    def tensor(self, a):
        return mg.from_numpy(a) if self.name == "cpu" else mg.tensor(a, device=self.name)


ON = OnDevice()


@pytest.fixture(scope="module", params=DEVICES)
def on_device(request):
    """Module-wide device switch for hypothesis tests (a function-scoped fixture would be reset
    between hypothesis examples): a test module adds ``pytestmark =
    pytest.mark.usefixtures("on_device")`` and builds its tensors with ``ON.tensor(a)``; every
    test then runs on the CPU and, where there is a GPU, on the GPU."""
    ON.name = request.param
    yield request.param
    ON.name = "cpu"


@pytest.fixture(autouse=True)
def _seed():
    mg.manual_seed(0)
    yield


def pytest_terminal_summary(terminalreporter):
    """Skips grouped by reason (one line each), instead of one line per skipped test: a
    parametrized suite without a GPU skips its cuda half, and that should read as one fact."""
    reasons = {}
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    if reasons:
        terminalreporter.section("skipped, by reason")
        for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
            terminalreporter.write_line(f"{n:6d}  {reason}")
