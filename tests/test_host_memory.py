"""minigrad/backend/host_memory.py: freed memory is kept for the next step (glibc), and
MINIGRAD_SYSTEM_MALLOC=1 leaves malloc alone.  Each check runs in a fresh interpreter: the
setting is process-wide and made once, at import."""
import json
import os
import platform
import subprocess
import sys

import pytest

glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc",
                                reason="mallopt's thresholds are a glibc setting; elsewhere nothing is changed")

# A training step in miniature: three 24 MB arrays alive at once, then all freed, ten times.
# glibc as it comes gives the freed top of its heap back to the kernel (72 MB free > twice
# the adapted mmap threshold), so every round faults its pages in again; with the memory kept,
# the rounds after the first reuse mapped pages.  Prints the minor faults of rounds 2..10 and
# the pages one round touches.
_STEPS = """
import json, resource, sys
import numpy as np
import minigrad
from minigrad.backend import host_memory

def round_():
    arrays = [np.ones(6 << 20, dtype=np.float32) for _ in range(3)]   # 3 x 24 MB, written
    return float(sum(a[-1] for a in arrays))

round_()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(9):
    round_()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"setting": host_memory.setting, "faults": faults, "pages_per_round": 3 * (24 << 20) // 4096}))
"""


def _run(env_extra):
    env = {k: v for k, v in os.environ.items() if k != "MINIGRAD_SYSTEM_MALLOC"}
    env.update(env_extra)
    out = subprocess.run([sys.executable, "-c", _STEPS], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@glibc_only
def test_importing_minigrad_keeps_freed_memory_for_the_next_round():
    result = _run({})
    assert result["setting"] == "glibc malloc: mmap threshold 256 MB, trim threshold 1024 MB"
    # Nine rounds touch 9 x 18,432 pages; kept memory is already mapped, so the faults that
    # remain are the interpreter's own small ones: far below one round's pages.
    assert result["faults"] < result["pages_per_round"] // 4, result


def test_minigrad_system_malloc_leaves_malloc_as_it_was():
    result = _run({"MINIGRAD_SYSTEM_MALLOC": "1"})
    assert result["setting"] is None


@glibc_only
def test_keep_freed_memory_reports_its_setting_and_can_be_called_again():
    from minigrad.backend import host_memory

    assert host_memory.keep_freed_memory() == host_memory.keep_freed_memory() == host_memory.setting
    assert "256 MB" in host_memory.setting and "1024 MB" in host_memory.setting
