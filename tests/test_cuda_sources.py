"""Every CUDA kernel family compiles with nvcc for sm_80 (A100) and sm_90 (H100), no GPU needed.

What is compiled is exactly the text cuda_kernels hands to NVRTC on a GPU (the family's .cu with
common.cuh pasted in), with the same --std flag, to PTX: the front end and NVVM catch syntax
and type errors, so a broken kernel fails here in CI rather than at first use on a GPU.  The
compilations run in parallel (about 15 s of CPU in all).
"""
import concurrent.futures
import os
import re
import shutil
import subprocess

import pytest

from minigrad.backend import cuda as cuda_kernels

NVCC = shutil.which("nvcc")
ARCHS = ("compute_80", "compute_90")

pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc (the CUDA toolkit) is not installed")


def _compile(tmp_path, family, arch):
    src = tmp_path / f"{family}.cu"
    if not src.exists():
        src.write_text(cuda_kernels.kernel_source(family))
    out = tmp_path / f"{family}.{arch}.ptx"
    cmd = [NVCC, *cuda_kernels.NVRTC_OPTIONS, f"-arch={arch}", "--ptx", str(src), "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    return proc.returncode, proc.stdout + proc.stderr, out


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """{(family, arch): (returncode, compiler output, ptx path)} for every family and arch."""
    tmp = tmp_path_factory.mktemp("cuda_sources")
    for family in cuda_kernels.FAMILIES:  # write the sources before the threads read them
        (tmp / f"{family}.cu").write_text(cuda_kernels.kernel_source(family))
    jobs = [(family, arch) for family in cuda_kernels.FAMILIES for arch in ARCHS]
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = pool.map(lambda job: _compile(tmp, *job), jobs)
        return dict(zip(jobs, results))


def test_every_kernel_file_is_a_family():
    on_disk = {p.stem for p in cuda_kernels.KERNEL_DIR.glob("*.cu")}
    assert on_disk == set(cuda_kernels.FAMILIES)
    assert (cuda_kernels.KERNEL_DIR / "common.cuh").exists()


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("family", cuda_kernels.FAMILIES)
def test_family_compiles(compiled, family, arch):
    code, output, ptx = compiled[family, arch]
    assert code == 0, f"nvcc failed on {family}.cu for {arch}:\n{output}"
    assert "warning" not in output.lower(), f"nvcc warned on {family}.cu for {arch}:\n{output}"
    # every kernel is exported under its C name in both precisions, <name>_f32 and <name>_f64
    entries = set(re.findall(r"\.entry\s+(\w+)\(", ptx.read_text()))
    assert entries, f"{family}.cu exported no kernels"
    f32 = {e[:-4] for e in entries if e.endswith("_f32")}
    f64 = {e[:-4] for e in entries if e.endswith("_f64")}
    assert f32 == f64 and f32, f"{family}: kernels without both precisions: {sorted(f32 ^ f64)}"


def test_sources_are_self_contained():
    for family in cuda_kernels.FAMILIES:
        text = cuda_kernels.kernel_source(family)
        assert not re.search(r"^\s*#\s*include", text, re.M), f"{family}: NVRTC has no include path"
        assert "struct MaxSum" in text  # common.cuh was pasted in
