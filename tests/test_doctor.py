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
