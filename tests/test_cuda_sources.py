"""Every CUDA kernel family compiles for sm_80 (A100) and sm_90 (H100), no GPU needed, twice:

* with **NVRTC**, the compiler CuPy really uses on a GPU (``cupy.RawModule`` compiles at run
  time), with exactly the options CuPy 14 passes (ours, plus its own: ``cupy_nvrtc_options``),
  to a cubin.  NVRTC comes from PyPI (``nvidia-cuda-nvrtc``, in the [test] extra), so this
  runs in CI; it skips only on platforms that wheel does not exist for;
* with **nvcc** (the CUDA toolkit, where installed), with the same --std flag, to PTX.

What is compiled is exactly the text cuda_kernels hands to CuPy (the family's .cu with
common.cuh pasted in).  The front end, NVVM and (for NVRTC's cubins) the assembler catch syntax
and type errors, warnings, and resource limits, so a broken kernel fails here in CI rather than
at first use on a GPU.  The compilations run in parallel (about 15 s of CPU for each compiler).
"""
import concurrent.futures
import ctypes
import ctypes.util
import glob
import os
import platform
import re
import shutil
import subprocess
import sys

import pytest

from minigrad.backend import cuda as cuda_kernels

NVCC = shutil.which("nvcc")
ARCHS = ("compute_80", "compute_90")

needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc (the CUDA toolkit) is not installed")


def _check_precisions(what, kernels):
    """Every kernel is exported under its C name in both precisions, <name>_f32 and <name>_f64."""
    assert kernels, f"{what} exported no kernels"
    f32 = {k[:-4] for k in kernels if k.endswith("_f32")}
    f64 = {k[:-4] for k in kernels if k.endswith("_f64")}
    assert f32 == f64 and f32, f"{what}: kernels without both precisions: {sorted(f32 ^ f64)}"


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


@needs_nvcc
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("family", cuda_kernels.FAMILIES)
def test_family_compiles(compiled, family, arch):
    code, output, ptx = compiled[family, arch]
    assert code == 0, f"nvcc failed on {family}.cu for {arch}:\n{output}"
    assert "warning" not in output.lower(), f"nvcc warned on {family}.cu for {arch}:\n{output}"
    _check_precisions(f"{family}.cu ({arch})", set(re.findall(r"\.entry\s+(\w+)\(", ptx.read_text())))


def test_sources_are_self_contained():
    for family in cuda_kernels.FAMILIES:
        text = cuda_kernels.kernel_source(family)
        assert not re.search(r"^\s*#\s*include", text, re.M), f"{family}: NVRTC has no include path"
        assert "struct MaxSum" in text  # common.cuh was pasted in


# ---------------------------------------------------------------------------------------------
# NVRTC: the compiler CuPy really uses on a GPU
#
# cupy.RawModule(code=...) does not run nvcc: CuPy compiles at run time with NVRTC, the CUDA
# compiler as a library, with options of its own added to ours.  So each family is compiled
# here again, by NVRTC from PyPI (the nvidia-cuda-nvrtc wheel, in the [test] extra; loaded with
# ctypes), with exactly the options CuPy 14 passes, to a cubin for sm_80 and sm_90 (NVRTC then
# runs the assembler too: register and shared-memory limits are checked as on a GPU).
# ---------------------------------------------------------------------------------------------
NVRTC_ARCHS = ("sm_80", "sm_90")
# Where the wheel's library exists (the [test] extra installs it only there; elsewhere: skip).
NVRTC_PLATFORMS = {("linux", "x86_64"), ("linux", "aarch64")}


def cupy_nvrtc_options(options, arch, nvrtc_major):
    """The option list NVRTC gets from ``cupy.RawModule(code=src, options=options)`` on a GPU
    of architecture ``arch``, in CuPy 14:

    * cupy/_core/core.pyx, ``assemble_cupy_compiler_options``: ``--std=c++11`` unless the
      options name a standard; around them the include paths of CuPy's headers, its CCCL copy
      and the CUDA headers (left out here: our sources include nothing, see
      test_sources_are_self_contained, and those folders exist only where CuPy is installed);
    * cupy/cuda/compiler.py, ``_compile_with_cache_cuda``: ``-ftz=true``, always (so on a GPU
      our float32 kernels flush denormals to zero: docs/emulator.md);
    * ``compile_using_nvrtc``: ``--device-as-default-execution-space`` from NVRTC 12 on, and
      ``-arch=sm_XY`` of the GPU (a cubin; CuPy falls back to ``-arch=compute_XY`` and PTX
      only when this NVRTC cannot build for the GPU).
    """
    options = tuple(options)
    if not any("-std=c++" in o for o in options):
        options += ("--std=c++11",)
    options += ("-ftz=true",)
    if nvrtc_major >= 12:
        options += ("--device-as-default-execution-space",)
    return options + (f"-arch={arch}",)


class NVRTC:
    """The few NVRTC calls a compile needs (nvrtc.h), through ctypes."""

    def __init__(self, path):
        lib = ctypes.CDLL(path)
        c_size_p, prog_p = ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_void_p)
        signatures = {
            "nvrtcVersion": [ctypes.POINTER(ctypes.c_int)] * 2,
            "nvrtcGetNumSupportedArchs": [ctypes.POINTER(ctypes.c_int)],
            "nvrtcGetSupportedArchs": [ctypes.POINTER(ctypes.c_int)],
            "nvrtcCreateProgram": [prog_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int,
                                   ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_char_p)],
            "nvrtcCompileProgram": [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)],
            "nvrtcGetProgramLogSize": [ctypes.c_void_p, c_size_p],
            "nvrtcGetProgramLog": [ctypes.c_void_p, ctypes.c_char_p],
            "nvrtcGetCUBINSize": [ctypes.c_void_p, c_size_p],
            "nvrtcGetCUBIN": [ctypes.c_void_p, ctypes.c_char_p],
            "nvrtcDestroyProgram": [prog_p],
        }
        for name, argtypes in signatures.items():
            fn = getattr(lib, name)
            fn.argtypes, fn.restype = argtypes, ctypes.c_int
        lib.nvrtcGetErrorString.argtypes, lib.nvrtcGetErrorString.restype = [ctypes.c_int], ctypes.c_char_p
        self.lib, self.path = lib, path
        major, minor = ctypes.c_int(), ctypes.c_int()
        self._check(lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)), "nvrtcVersion")
        self.version = (major.value, minor.value)
        count = ctypes.c_int()
        self._check(lib.nvrtcGetNumSupportedArchs(ctypes.byref(count)), "nvrtcGetNumSupportedArchs")
        archs = (ctypes.c_int * count.value)()
        self._check(lib.nvrtcGetSupportedArchs(archs), "nvrtcGetSupportedArchs")
        self.archs = {f"sm_{a}" for a in archs}

    def _check(self, result, call):
        if result != 0:
            raise RuntimeError(f"{call} failed: {self.lib.nvrtcGetErrorString(result).decode()}")

    def compile(self, source, options, name="kernel.cu"):
        """(accepted, the compiler's log, the cubin or None)."""
        lib, prog = self.lib, ctypes.c_void_p()
        self._check(lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), name.encode(), 0, None, None),
                    "nvrtcCreateProgram")
        try:
            encoded = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
            result = lib.nvrtcCompileProgram(prog, len(options), encoded)
            size = ctypes.c_size_t()
            self._check(lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size)), "nvrtcGetProgramLogSize")
            log = ctypes.create_string_buffer(size.value)
            self._check(lib.nvrtcGetProgramLog(prog, log), "nvrtcGetProgramLog")
            if result != 0:
                return False, log.value.decode(errors="replace"), None
            self._check(lib.nvrtcGetCUBINSize(prog, ctypes.byref(size)), "nvrtcGetCUBINSize")
            cubin = ctypes.create_string_buffer(size.value)
            self._check(lib.nvrtcGetCUBIN(prog, cubin), "nvrtcGetCUBIN")
            return True, log.value.decode(errors="replace"), cubin.raw
        finally:
            lib.nvrtcDestroyProgram(ctypes.byref(prog))


def _nvrtc_library():
    """The newest libnvrtc of the nvidia-cuda-nvrtc wheel (nvidia/cu13/lib/libnvrtc.so.13, or
    nvidia/cuda_nvrtc/lib/... for CUDA 12's), else the system's; None when there is none."""
    found = []
    try:
        import nvidia  # the namespace package of NVIDIA's wheels
    except ImportError:
        pass
    else:
        for base in nvidia.__path__:
            found += glob.glob(os.path.join(base, "*", "lib", "libnvrtc.so.*"))
    if found:
        return max(found, key=lambda p: [int(n) for n in re.findall(r"\d+", os.path.basename(p))])
    return ctypes.util.find_library("nvrtc")


@pytest.fixture(scope="module")
def nvrtc():
    here = (sys.platform, platform.machine())
    if here not in NVRTC_PLATFORMS:
        pytest.skip(f"NVRTC from PyPI (nvidia-cuda-nvrtc) is installed by the [test] extra on "
                    f"{sorted(NVRTC_PLATFORMS)} only, not on {here}")
    path = _nvrtc_library()
    if path is None:
        pytest.fail("NVRTC is missing: the [test] extra installs it (pip install -e \".[test]\", or "
                    "pip install \"nvidia-cuda-nvrtc>=13,<14\"); CuPy compiles our kernels with it on a GPU")
    compiler = NVRTC(path)
    missing = set(NVRTC_ARCHS) - compiler.archs
    assert not missing, f"NVRTC {compiler.version} ({path}) cannot build for {sorted(missing)}"
    return compiler


def _nvrtc_compile(compiler, source, arch):
    return compiler.compile(source, cupy_nvrtc_options(cuda_kernels.NVRTC_OPTIONS, arch, compiler.version[0]))


@pytest.fixture(scope="module")
def nvrtc_compiled(nvrtc):
    """{(family, arch): (accepted, log, cubin)}: every family for every arch, in parallel
    (ctypes lets the threads run while NVRTC compiles; about 20 s of CPU in all)."""
    jobs = [(family, arch) for family in cuda_kernels.FAMILIES for arch in NVRTC_ARCHS]
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = pool.map(lambda job: _nvrtc_compile(nvrtc, cuda_kernels.kernel_source(job[0]), job[1]), jobs)
        return dict(zip(jobs, results))


def check_nvrtc_result(what, result):
    """Assert that NVRTC accepted ``what`` without a warning and built every kernel in both
    precisions; returns the kernels' names.  (A cubin has a section ``.nv.info.<name>`` for
    each kernel, __global__ functions only.)"""
    accepted, log, cubin = result
    assert accepted, f"NVRTC rejected {what}:\n{log}"
    assert "warning" not in log.lower(), f"NVRTC warned on {what}:\n{log}"
    kernels = {name.decode() for name in re.findall(rb"\.nv\.info\.(\w+)\x00", cubin)}
    _check_precisions(what, kernels)
    return kernels


@pytest.mark.parametrize("arch", NVRTC_ARCHS)
@pytest.mark.parametrize("family", cuda_kernels.FAMILIES)
def test_family_compiles_with_nvrtc_as_cupy_does(nvrtc_compiled, family, arch):
    check_nvrtc_result(f"{family}.cu for {arch}", nvrtc_compiled[family, arch])


# Flawed sources, each with what the check must say about it.
BROKEN = {
    "an undefined name": ('extern "C" __global__ void k_f32(float* x) { x[0] = undefined_value; }',
                          'identifier "undefined_value" is undefined'),
    "a type error": ('extern "C" __global__ void k_f32(float* x) { int* p = x; p[0] = 1; }',
                     'cannot be used to initialize an entity of type "int *"'),
    "a warning": ('extern "C" __global__ void k_f32(float* x) { int unused; x[0] = 1; }',
                  "NVRTC warned"),
}
_F64 = '\nextern "C" __global__ void k_f64(double* x) { x[0] = 1; }\n'
BROKEN = {flaw: (source + _F64, message) for flaw, (source, message) in BROKEN.items()}
BROKEN["a missing precision"] = ('extern "C" __global__ void k_f32(float* x) { x[0] = 1; }\n',
                                 "kernels without both precisions: ['k']")


@pytest.mark.parametrize("flaw", list(BROKEN))
def test_a_flawed_kernel_fails_the_nvrtc_check(nvrtc, flaw):
    """The check every family passes fails on each of these flaws, so it catches them in a
    family: NVRTC really rejects (or warns about) what it must."""
    source, message = BROKEN[flaw]
    result = _nvrtc_compile(nvrtc, source, "sm_90")
    with pytest.raises(AssertionError, match=re.escape(message)):
        check_nvrtc_result("the flawed source", result)


def test_a_correct_kernel_passes_the_nvrtc_check(nvrtc):
    source = ('extern "C" __global__ void k_f32(float* x) { x[0] = 1; }\n'
              'extern "C" __global__ void k_f64(double* x) { x[0] = 1; }\n')
    assert check_nvrtc_result("a correct source", _nvrtc_compile(nvrtc, source, "sm_80")) == {"k_f32", "k_f64"}


def test_cupy_options():
    """What CuPy 14 adds to ours (see cupy_nvrtc_options)."""
    assert cupy_nvrtc_options(("--std=c++17",), "sm_90", 13) == (
        "--std=c++17", "-ftz=true", "--device-as-default-execution-space", "-arch=sm_90")
    assert cupy_nvrtc_options((), "sm_80", 11) == ("--std=c++11", "-ftz=true", "-arch=sm_80")
