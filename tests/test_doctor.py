"""``python -m minigrad`` and ``python -m minigrad doctor``: the report and the self-test."""
import io
import subprocess
import sys

import numpy as np

import minigrad as mg
from minigrad import diagnostics as doctor


def test_python_m_minigrad_reports_version_devices_and_passes_its_self_test():
    out = subprocess.run([sys.executable, "-m", "minigrad"], capture_output=True, text=True, check=True).stdout
    assert f"minigrad {mg.__version__}" in out
    assert "cpu: forward, backward, cross-entropy: ok" in out
    assert "cuda:" in out


def test_doctor_lists_the_libraries_and_says_why_there_is_no_gpu():
    buf = io.StringIO()
    doctor.report(full=True, file=buf)
    text = buf.getvalue()
    assert f"NumPy {np.__version__}" in text and "numba" in text and "CuPy" in text
    assert f"allocator: {mg.backend.host_memory.setting or 'as the process started'}" in text
    usable, why = mg.backend.cuda_status()
    assert usable == mg.cuda_available()
    if not usable:  # a reason a user can act on, not a traceback
        assert "CuPy is not installed" in why or "no CUDA GPU found" in why


def test_the_self_test_catches_a_wrong_gradient(monkeypatch):
    real = mg.nn.functional.cross_entropy
    monkeypatch.setattr(mg.nn.functional, "cross_entropy", lambda x, y: real(x, y) * 2)
    try:
        doctor._self_test("cpu")
    except AssertionError as e:
        assert "self-test on cpu" in str(e)
    else:
        raise AssertionError("a doubled loss went unnoticed")


def _emulator_ready():
    from minigrad.backend.cuda import emulator

    return emulator.available()


def test_doctor_runs_one_kernel_of_every_table():
    """The smoke test really runs (it once called a backend function that did not exist, and
    printed nothing): ReLU from each table, against NumPy."""
    buf = io.StringIO()
    doctor.report(full=True, file=buf)
    text = buf.getvalue()
    assert "kernels cpu: relu ok" in text and "kernels reference: relu ok" in text
    if _emulator_ready():
        assert "kernels cuda C, emulated on the CPU: relu ok" in text
    else:
        assert "kernels cuda C, emulated on the CPU: not available" in text
    assert "WRONG" not in text


def test_doctor_names_the_emulated_device_and_runs_its_self_test_there():
    import os

    import pytest

    if not _emulator_ready():
        pytest.skip(f"the CUDA emulator cannot run here: {_emulator_ready()}")
    env = dict(os.environ, MINIGRAD_CUDA_EMULATOR="1")
    out = subprocess.run([sys.executable, "-m", "minigrad", "doctor"], capture_output=True, text=True, check=True,
                         env=env).stdout
    assert "cuda: minigrad's CUDA emulator" in out
    assert "CuPy not used" in out
    assert "cuda: forward, backward, cross-entropy: ok" in out
    assert "kernels cuda C on device 'cuda' (emulated): relu ok" in out
