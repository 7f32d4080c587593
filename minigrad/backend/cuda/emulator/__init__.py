"""Run CUDA C kernels on the CPU, with CUDA's execution model.

The same kernel source that ``cupy.RawModule(code=...)`` compiles with NVRTC for a GPU is
compiled here with g++ and run on the CPU, so the logic of minigrad's CUDA kernels can be tested
on a machine without a GPU, and a student can run (and step through) a kernel anywhere::

    from minigrad.backend.cuda import emulator
    mod = emulator.Module(code)                   # like cupy.RawModule(code=code)
    fn = mod.get_function("relu_forward_f32")          # an extern "C" __global__ function
    fn((blocks,), (256,), (x, y, np.int64(n)))         # like a cupy.RawKernel launch
    fn((blocks,), (256,), (x, y, np.int64(n)), shared_mem=1024)

NumPy arrays stand in for CuPy arrays (the kernel gets a pointer to their data) and scalars are
passed as CuPy passes them. How it works (docs/emulator.md has the full story):

* the source is preprocessed with ``cuda_device.h`` in front (CUDA's built-ins for g++),
  ``__shared__`` declarations and kernels are rewritten, a launch table is appended, and the
  result is compiled into a shared library, cached under ``~/.cache/minigrad/emulator``;
* a launch runs the blocks one after another; the threads of a block are fibers that
  ``runtime.cpp`` switches between at ``__syncthreads()`` and warp collectives;
* every argument is checked against the kernel's parameter types before the launch, and a
  deadlock, a fault or an exceeded limit inside the kernel raises instead of hanging or crashing.

Environment variables: ``MINIGRAD_EMU_CHECK=1`` copies every array argument between guard pages
so out-of-bounds accesses stop the kernel; ``MINIGRAD_EMU_STACK_KB`` sets each thread's stack
(default 64); ``MINIGRAD_EMU_DEBUG=1`` compiles with ``-O0 -g`` for stepping through a kernel in
gdb; ``MINIGRAD_EMU_CXX`` (or ``CXX``) picks the compiler; ``MINIGRAD_CACHE`` moves the cache.
"""
import ctypes
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

from .... import _env

__all__ = [
    "Module", "Function", "RawKernel", "available",
    "EmulatorError", "CompileError", "DeadlockError", "KernelError", "ResourceError",
    "SHARED_MEMORY_PER_BLOCK", "SHARED_MEMORY_PER_BLOCK_OPTIN",
]

# Limits of a CUDA device (compute capability 9.0, the H100); change them to model another GPU.
MAX_THREADS_PER_BLOCK = 1024
MAX_BLOCK_DIM = (1024, 1024, 64)
MAX_GRID_DIM = (2**31 - 1, 65535, 65535)
SHARED_MEMORY_PER_BLOCK = 48 * 1024          # static + dynamic, unless the kernel opts in
SHARED_MEMORY_PER_BLOCK_OPTIN = 227 * 1024   # the most a kernel may opt in to (sm_90)

_EMULATOR_DIR = Path(__file__).resolve().parent
_ABI_VERSION = 1


class EmulatorError(RuntimeError):
    """Something went wrong inside an emulated kernel or while building one."""


class CompileError(EmulatorError):
    """The CUDA source does not compile for the emulator (the message has g++'s diagnostics)."""


class DeadlockError(EmulatorError):
    """A barrier or warp collective can never complete; the message says who waits where."""


class KernelError(EmulatorError):
    """The kernel faulted: illegal or out-of-bounds memory access, stack overflow, trap, assert."""


class ResourceError(EmulatorError):
    """The launch needs more of a per-block resource (shared memory) than a GPU gives it."""


class Unavailable(str):
    """Why the emulator cannot run here. False in a boolean context, so ``if available():`` works."""

    def __bool__(self):
        return False


# ---------------------------------------------------------------------------------------------
# The toolchain: compiler, flags, cache
# ---------------------------------------------------------------------------------------------
# -ffp-contract=fast: contract a*b+c into fused multiply-adds, as NVRTC does by default (-fmad=true);
# on x86-64 only with -mfma (_fma_flags), and never at -O0 (docs/emulator.md: "Floating point").
_FLAGS = ("-fPIC", "-fwrapv", "-fno-strict-aliasing", "-fno-math-errno", "-fno-threadsafe-statics",
          "-fvisibility=hidden", "-ffp-contract=fast", "-w")
_build_lock = threading.Lock()
_launch_lock = threading.Lock()
_toolchain = None
_available = None
_libraries = {}


class _Toolchain:
    """The C++ compiler, the flags every module is built with, and the compiled runtime."""

    def __init__(self):
        cxx = _env.setting("MINIGRAD_EMU_CXX") or _env.setting("CXX") or shutil.which("g++") \
            or shutil.which("c++") or shutil.which("clang++")
        if not cxx:
            raise EmulatorError("no C++ compiler found (install g++, or set MINIGRAD_EMU_CXX)")
        self.cxx = cxx
        try:
            version = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=True)
            machine = subprocess.run([cxx, "-dumpmachine"], capture_output=True, text=True, check=True)
        except (OSError, subprocess.CalledProcessError) as e:
            raise EmulatorError(f"the C++ compiler {cxx!r} does not run: {e}") from None
        self.version = version.stdout.splitlines()[0] if version.stdout else cxx
        debug = _env.flag("MINIGRAD_EMU_DEBUG")
        self.flags = ("-O0", "-g") + _FLAGS if debug else ("-O2",) + _FLAGS
        self.flags += _fma_flags(machine.stdout)
        if _env.flag("MINIGRAD_EMU_UCONTEXT"):  # the portable context switch
            self.flags += ("-DMGEMU_UCONTEXT",)
        self.identity = "\n".join([str(_ABI_VERSION), self.version, machine.stdout.strip(), " ".join(self.flags)]
                                  + [(_EMULATOR_DIR / f).read_text() for f in sorted(os.listdir(_EMULATOR_DIR))
                                     if f.endswith((".h", ".cpp"))])
        self.cache = _cache_dir()
        self.runtime = self._compile_runtime()

    def _compile_runtime(self):
        path = self.cache / f"runtime-{_digest(self.identity)}.o"
        if not path.exists():
            with tempfile.TemporaryDirectory(dir=self.cache) as tmp:
                out = Path(tmp) / "runtime.o"
                self.run(["-std=c++17", *self.flags, "-c", str(_EMULATOR_DIR / "runtime.cpp"), "-o", str(out)],
                         tmp, "the emulator's runtime")
                os.replace(out, path)
        return path

    def run(self, args, cwd, what):
        result = subprocess.run([self.cxx, *args], cwd=cwd, capture_output=True, text=True)
        if result.returncode != 0:
            log = "\n".join(result.stderr.strip().splitlines()[:60])
            raise CompileError(f"{what} does not compile for the CUDA emulator ({self.version}):\n{log}")
        return result


def _fma_flags(machine):
    """-mfma where the compiler targets x86-64 and this CPU has FMA instructions (Haswell and
    later): x86-64's baseline lacks them, so without it g++ cannot contract. AArch64 always
    has them."""
    if not machine.startswith("x86_64"):
        return ()
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return ()
    return ("-mfma",) if "fma" in flags else ()


def _cache_dir():
    path = _env.cache_dir() / "emulator"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _digest(*parts):
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()[:32]


def _get_toolchain():
    global _toolchain
    with _build_lock:
        if _toolchain is None:
            _toolchain = _Toolchain()
        return _toolchain


def available():
    """True when kernels can be emulated here; otherwise an (always false) string saying why."""
    global _available
    if _available is None:
        if not sys.platform.startswith("linux"):
            _available = Unavailable(f"the CUDA emulator needs Linux (fibers, signals, mmap); this is {sys.platform}")
        else:
            try:
                _get_toolchain()
                _available = True
            except (EmulatorError, OSError) as e:
                _available = Unavailable(f"the CUDA emulator cannot build its runtime here: {e}")
    return _available


# ---------------------------------------------------------------------------------------------
# From CUDA source to emulator source: preprocess, find kernels, rewrite __shared__, add stubs
# ---------------------------------------------------------------------------------------------
_LEXEMES = re.compile(r"""
      "(?:\\.|[^"\\\n])*"                      # string literal
    | (?<![\w'])'(?:\\.|[^'\\\n])+'            # character literal (not a digit separator)
    | ^[ \t]*\#[^\n]*                          # #pragma
    | [{};]
    | \b__mgemu_(?:global|shared)__\b          # what __global__ and __shared__ expand to
    | \b(?:asm|__asm__|__asm)\b                 # inline assembly (PTX cannot run here)
""", re.X | re.M)
_LINEMARKER = re.compile(r'^\#[ \t]*(\d+)[ \t]+"((?:\\.|[^"\\\n])*)"([^\n]*)', re.M)
_CALL = re.compile(r"([A-Za-z_]\w*)\s*\(")
_STATEMENT_END = re.compile(r'"(?:\\.|[^"\\])*"|[()\[\]{};]')
_ATTRIBUTE = re.compile(r"__attribute__\s*\(\(|\balignas\s*\(")
_SKIPPED_CALLS = {"__attribute__", "__declspec", "alignas", "decltype", "__mgemu_launch_bounds__"}
_TYPE_WORDS = {"const", "volatile", "unsigned", "signed", "int", "long", "short", "char", "float", "double",
               "bool", "void", "__restrict__", "__restrict", "struct", "class", "typename"}


_PARENS = re.compile(r'"(?:\\.|[^"\\])*"|[()]')


def _closing(text, i):
    """Index of the parenthesis that closes the one at text[i]."""
    depth = 0
    for m in _PARENS.finditer(text, i):
        ch = m.group(0)
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return m.start()
    raise CompileError(f"unbalanced ( in the preprocessed source near: {text[i:i + 80]!r}")


def _attributes(text, start=0, end=None):
    """(start, end) of each __attribute__((...)) and alignas(...) in text[start:end]."""
    spans, end = [], len(text) if end is None else end
    while (m := _ATTRIBUTE.search(text, start, end)):
        opening = m.end() - 2 if m.group(0).startswith("__attribute__") else m.end() - 1
        start = _closing(text, opening) + 1
        spans.append((m.start(), start))
    return spans


def _strip_attributes(text):
    for start, end in reversed(_attributes(text)):
        text = text[:start] + " " + text[end:]
    return text


def _split_top_level(text):
    """Split at commas that are not inside (), [], {} or template <>."""
    parts, depth, angle, start = [], 0, 0, 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0 and ch == "<":
            angle += 1
        elif depth == 0 and ch == ">":
            angle -= 1
        elif ch == "," and depth == 0 and angle == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _declared_name(declarator):
    """`float tile[32][33]` -> 'tile'; `Pair<int, 2> p` -> 'p'; `float* x = 0` -> 'x'."""
    head = re.split(r"[\[=]", _strip_attributes(declarator), maxsplit=1)[0]
    while re.search(r"<[^<>]*>", head):
        head = re.sub(r"<[^<>]*>", " ", head)
    names = re.findall(r"[A-Za-z_]\w*", head)
    if not names:
        raise CompileError(f"cannot find the name declared in __shared__ {declarator.strip()!r}")
    return names[-1]


def _param_name(param):
    words = re.findall(r"[A-Za-z_]\w*|\S", re.split(r"[\[=]", _strip_attributes(param), maxsplit=1)[0])
    if len(words) >= 2 and re.match(r"[A-Za-z_]", words[-1]) and words[-1] not in _TYPE_WORDS:
        return words[-1]
    return ""


def _scope_of(prefix):
    """What kind of block a `{` opens, judged by the text since the previous statement."""
    p = " ".join(line for line in prefix.splitlines() if not line.lstrip().startswith("#")).strip()
    while p.startswith("template"):  # drop template headers: `class T` is not a class body
        start = p.find("<")
        if start < 0:
            break
        depth = 0
        for i in range(start, len(p)):
            depth += {"<": 1, ">": -1}.get(p[i], 0)
            if depth == 0:
                p = p[i + 1:].strip()
                break
        else:
            break
    if re.search(r"\bnamespace\b", p):
        m = re.search(r"namespace\s+([\w:]+)\s*$", p)
        return ("namespace", m.group(1) if m else "")
    if re.search(r'\bextern\s*"C"\s*$', p):
        return ("extern C", "")
    if re.search(r'\bextern\s*"C\+\+"\s*$', p):
        return ("namespace", "")
    if re.search(r"\b(struct|class|union|enum)\b", p) and not p.endswith(")"):
        return ("class", "")
    return ("code", "")


class _Kernel:
    """A __global__ function found in the source."""

    def __init__(self, name, qualified, params, bounds):
        self.name, self.qualified, self.bounds = name, qualified, bounds
        self.param_names = [_param_name(p) for p in _split_top_level(params)] if params.strip() not in ("", "void") else []


class _Translation:
    """Turns preprocessed CUDA C++ into the C++ the emulator compiles.

    * each ``__global__`` marker disappears; the kernels are collected (name, linkage, parameter
      names, ``__launch_bounds__``) for the launch table;
    * ``__shared__ T x[N];`` becomes ``static T x[N];`` plus a note to the runtime, which counts
      it against the shared-memory limit and fills it with garbage when a block first reaches it;
    * ``extern __shared__ T x[];`` (dynamic shared memory) becomes a reference to the launch's
      dynamic shared-memory pointer;
    Line numbers never change, so g++'s messages point at the CUDA source.
    """

    def __init__(self, text, name_expressions):
        self.text = text
        self.edits = []          # (start, end, replacement)
        self.kernels = {}        # name -> _Kernel (extern "C" and name expressions: launchable)
        self.others = {}         # name -> "template" | "c++ linkage"
        self.user_files = set()  # files included from outside the system and emulator headers
        self.notes = 0
        self._walk()
        for bounds in re.finditer(r"\b__mgemu_launch_bounds__\s*\(", text):
            self.edits.append((bounds.start(), _closing(text, bounds.end() - 1) + 1, ""))
        for expression in name_expressions:
            self.kernels[expression] = _Kernel(expression, expression, "", "")

    def _walk(self):
        """Follow the braces and statements of the code that comes from user files (the kernel
        source and its own headers). System and emulator headers are skipped: no markers are in
        them, and each one is brace-balanced, so the brace stack is the same with or without them."""
        text = self.text
        stack = []  # per open `{`: [(start, end) of the text before it, its scope or None until needed]
        regions = list(_LINEMARKER.finditer(text)) + [None]
        for here, following in zip(regions, regions[1:]):
            file, line_base, flags = here.group(2), int(here.group(1)), here.group(3).split()
            if "3" in flags or file.startswith("<") or _is_emulator_file(file):
                continue
            if file != "kernel.cu":
                self.user_files.add(file)
            start, end = here.end() + 1, following.start() if following else len(text)
            boundary = start
            for m in _LEXEMES.finditer(text, start, end):
                token, pos = m.group(0), m.start()
                if token[0] in "\"'":
                    continue
                if token == "{":
                    stack.append([(boundary, pos), None])
                    boundary = m.end()
                elif token == "}":
                    if stack:
                        stack.pop()
                    boundary = m.end()
                elif token == ";" or token.lstrip().startswith("#"):
                    boundary = m.end()
                else:
                    line = line_base + text.count("\n", start, pos)
                    scopes = [self._scope(entry) for entry in stack]
                    if token.startswith(("asm", "__asm")):
                        raise CompileError(f"{file}:{line}: inline assembly (asm) is PTX for a GPU and cannot run in "
                                           f"the CUDA emulator; keep it under `#if defined(__CUDA_ARCH__)` (not "
                                           f"defined here) with plain CUDA C in the #else branch")
                    if token == "__mgemu_global__":
                        self._kernel(m, boundary, scopes)
                    else:
                        self._shared(m, boundary, scopes, file, line)

    def _scope(self, entry):
        if entry[1] is None:
            entry[1] = _scope_of(self.text[entry[0][0]:entry[0][1]])
        return entry[1]

    def _kernel(self, m, boundary, scopes):
        text = self.text
        self.edits.append((m.start(), m.end(), ""))
        kinds = [kind for kind, _ in scopes]
        if "code" in kinds or "class" in kinds:
            return
        prefix = text[boundary:m.start()]
        pos, bounds = m.end(), ""
        while True:
            call = _CALL.search(text, pos)
            if not call:
                return
            close = _closing(text, call.end() - 1)
            if call.group(1) not in _SKIPPED_CALLS:
                break
            if call.group(1) == "__mgemu_launch_bounds__":
                bounds = _split_top_level(text[call.end():close])[0]
            pos = close + 1
        name = call.group(1)
        if re.search(r"\btemplate\b", prefix):
            self.others.setdefault(name, "template")
            return
        if not (re.search(r'\bextern\s*"C"', prefix) or "extern C" in kinds):
            self.others.setdefault(name, "c++ linkage")
            return
        qualified = "::".join([n for kind, n in scopes if kind == "namespace" and n] + [name])
        self.kernels[name] = _Kernel(name, qualified, text[call.end():close], bounds)

    def _shared(self, m, boundary, scopes, file, line):
        text = self.text
        end = m.end()
        depth = 0
        for s in _STATEMENT_END.finditer(text, end):
            ch = s.group(0)
            depth += 1 if ch in "([{" else -1 if ch in ")]}" else 0
            if ch == ";" and depth == 0:
                semi = s.start()
                break
        else:
            raise CompileError(f"{file}:{line}: cannot find the end of a __shared__ declaration")
        prefix, declaration = text[boundary:m.start()], text[end:semi]
        in_function = any(kind == "code" for kind, _ in scopes)
        if re.search(r"\bextern\b", prefix):
            start = boundary + len(prefix) - len(prefix.lstrip())
            self._dynamic_shared(start, semi, prefix, declaration, file, line)
            return
        # `static` goes where __shared__ was, after any alignas(...) of the declaration (standard
        # attributes must come first)
        aligns = [(a, b) for a, b in _attributes(text, end, semi) if text.startswith("alignas", a)]
        static = "" if re.search(r"\bstatic\b", prefix) else "static"
        self.edits.append((m.start(), end, " ".join([text[a:b] for a, b in aligns] + [static])))
        self.edits += [(a, b, "") for a, b in aligns]
        notes = []
        for declarator in _split_top_level(declaration):
            name = _declared_name(declarator)
            if in_function:
                notes.append(f' ::mgemu::note_shared(&{name}, sizeof({name}), "{name}", "{file}", {line});')
            else:
                self.notes += 1
                notes.append(f' static ::mgemu::SharedNote __mgemu_shared_note_{self.notes}(&{name}, sizeof({name}), "{name}");')
        self.edits.append((semi + 1, semi + 1, "".join(notes)))

    def _dynamic_shared(self, start, semi, prefix, declaration, file, line):
        found = re.fullmatch(r"(.*?)([A-Za-z_]\w*)\s*\[\s*\](.*)", _strip_attributes(declaration), re.S)
        if not found:
            raise CompileError(f"{file}:{line}: an extern __shared__ array must have an empty first dimension "
                               f"(dynamic shared memory), as in `extern __shared__ float buffer[];`")
        spec, name, rest = found.groups()
        qualifiers = [w for w in re.findall(r"\w+", _strip_attributes(prefix)) if w not in ("extern", "static")]
        self.notes += 1
        alias = f"__mgemu_dynamic_{self.notes}"
        original = self.text[start:semi + 1]
        replacement = (f"using {alias} = {' '.join(qualifiers)} {' '.join(spec.split())} (*){' '.join(rest.split())}; "
                       f"static {alias} const& {name} = *reinterpret_cast<{alias} const*>(&::mgemu::dynamic_shared_base);")
        self.edits.append((start, semi + 1, replacement + "\n" * original.count("\n")))

    def result(self):
        pieces, pos = [], 0
        for start, end, replacement in sorted(self.edits):
            if start < pos:
                raise CompileError("the emulator could not rewrite the source (overlapping rewrites); please report")
            removed = self.text[start:end]
            pieces += [self.text[pos:start], replacement, "\n" * (removed.count("\n") - replacement.count("\n"))]
            pos = end
        pieces.append(self.text[pos:])
        return "".join(pieces) + self._table()

    def _table(self):
        """The launch table: one KernelDesc per launchable kernel, read by Module through ctypes."""
        entries = []
        for k in self.kernels.values():
            bounds = f"static_cast<int>({k.bounds})" if k.bounds.strip() else "0"
            entries.append(f"    ::mgemu::kernel_desc<&{k.qualified}>({_c_string(k.name)}, "
                           f"{_c_string(','.join(k.param_names))}, {bounds}),")
        others = ";".join(f"{name}:{why}" for name, why in self.others.items() if name not in self.kernels)
        export = 'extern "C" __attribute__((visibility("default")))'
        return "\n".join([
            "", '# 1 "<emulator launch table>"',
            "static const ::mgemu::KernelDesc __mgemu_table[] = {", *entries, "    ::mgemu::KernelDesc{}", "};",
            f"{export} int mgemu_num_kernels() {{ return {len(entries)}; }}",
            f"{export} const ::mgemu::KernelDesc* mgemu_kernel(int i) {{ return &__mgemu_table[i]; }}",
            f"{export} const char* mgemu_other_kernels() {{ return {_c_string(others)}; }}", ""])


@functools.lru_cache(maxsize=None)
def _is_emulator_file(file):
    return Path(file).resolve().parent == _EMULATOR_DIR


def _c_string(s):
    return json.dumps(s)  # ASCII with " and \ escaped: a valid C string literal


def _parse_options(options):
    """NVRTC options -> g++ preprocessor options. Others (-arch, --use_fast_math, ...) do not apply."""
    if isinstance(options, str) or not isinstance(options, (tuple, list)):
        raise TypeError(f"options must be a tuple of strings (as for cupy.RawModule), got {options!r}")
    out, std, i = [], "c++17", 0
    options = list(options)
    while i < len(options):
        opt = options[i]
        if not isinstance(opt, str):
            raise TypeError(f"options must be strings, got {opt!r}")
        for short, long_ in (("-I", "--include-path="), ("-D", "--define-macro="), ("-U", "--undefine-macro=")):
            if opt in (short, long_.rstrip("=")) and i + 1 < len(options):
                value, i = options[i + 1], i + 1
            elif opt.startswith(long_):
                value = opt[len(long_):]
            elif opt.startswith(short) and len(opt) > 2:
                value = opt[2:]
            else:
                continue
            out.append(short + (str(Path(value).resolve()) if short == "-I" else value))
            break
        else:
            m = re.fullmatch(r"--?std=(c\+\+\d\d)", opt)
            if m and m.group(1) not in ("c++03", "c++11", "c++14"):
                std = m.group(1)
        i += 1
    return out, std


# ---------------------------------------------------------------------------------------------
# The compiled module: ctypes views of runtime.h's structs
# ---------------------------------------------------------------------------------------------
class _ParamDesc(ctypes.Structure):
    _fields_ = [("kind", ctypes.c_int), ("size", ctypes.c_int), ("pointee_kind", ctypes.c_int),
                ("pointee_size", ctypes.c_int), ("pointee_const", ctypes.c_int), ("type_name", ctypes.c_char_p)]


class _KernelDesc(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("invoke", ctypes.c_void_p), ("num_params", ctypes.c_int),
                ("params", ctypes.POINTER(_ParamDesc)), ("param_names", ctypes.c_char_p),
                ("max_threads", ctypes.c_int)]


class _ArrayArg(ctypes.Structure):
    _fields_ = [("index", ctypes.c_int), ("writable", ctypes.c_int), ("address", ctypes.c_uint64),
                ("bytes", ctypes.c_uint64), ("label", ctypes.c_char_p)]


class _LaunchDesc(ctypes.Structure):
    _fields_ = [("kernel", ctypes.c_void_p), ("grid", ctypes.c_uint * 3), ("block", ctypes.c_uint * 3),
                ("dynamic_shared", ctypes.c_uint64), ("shared_limit", ctypes.c_uint64),
                ("args", ctypes.POINTER(ctypes.c_void_p)), ("arrays", ctypes.POINTER(_ArrayArg)),
                ("num_arrays", ctypes.c_int), ("check_bounds", ctypes.c_int), ("stack_bytes", ctypes.c_uint64)]


_POINTER, _FLOAT, _SIGNED, _UNSIGNED, _BOOL, _OTHER = 1, 2, 3, 4, 5, 6
_STATUS_ERRORS = {1: DeadlockError, 2: KernelError, 3: ResourceError, 4: KeyboardInterrupt, 5: EmulatorError}


def _build(code, options, name_expressions):
    """Compile (or find in the cache) the shared library for a module; returns its path."""
    tc = _get_toolchain()
    preprocessor, std = _parse_options(options)
    source_key = _digest(tc.identity, code, " ".join(preprocessor), std, "\n".join(name_expressions))
    manifest = tc.cache / f"{source_key}.deps"
    if manifest.exists():  # included files (outside the system headers) must be unchanged too
        deps = json.loads(manifest.read_text())
        if all(os.path.exists(f) for f in deps):
            library = tc.cache / f"{_digest(source_key, *(_file_digest(f) for f in deps))}.so"
            if library.exists():
                return library
    with tempfile.TemporaryDirectory(dir=tc.cache) as tmp:
        Path(tmp, "kernel.cu").write_text(code)
        tc.run(["-E", f"-std={std}", "-I", str(_EMULATOR_DIR), *preprocessor,
                "-include", str(_EMULATOR_DIR / "cuda_device.h"), "-x", "c++", "kernel.cu", "-o", "kernel.ii"], tmp, "The CUDA source")
        translation = _Translation(Path(tmp, "kernel.ii").read_text(), name_expressions)
        Path(tmp, "module.ii").write_text(translation.result())
        debug = ()
        if "-g" in tc.flags:  # a debugger shows kernel.cu from a copy that outlives the build directory
            sources = tc.cache / f"{source_key}-src"
            sources.mkdir(exist_ok=True)
            (sources / "kernel.cu").write_text(code)
            debug = (f"-fdebug-prefix-map={tmp}={sources}",)
        try:
            tc.run([f"-std={std}", *tc.flags, *debug, "-shared", "-o", "module.so", "module.ii", str(tc.runtime)], tmp,
                   "The CUDA source")
        except CompileError as e:
            if "<emulator launch table>" in str(e):
                raise CompileError(f"{e}\n(the launch table refers to each kernel as &name: a kernel launched by name "
                                   f"must be a void extern \"C\" __global__ function, and each name expression must "
                                   f"name one __global__ function template instantiation)") from None
            raise
        deps = sorted(str(Path(tmp, f).resolve()) for f in translation.user_files)
        library = tc.cache / f"{_digest(source_key, *(_file_digest(f) for f in deps))}.so"
        os.replace(Path(tmp, "module.so"), library)
        Path(tmp, "deps").write_text(json.dumps(deps))
        os.replace(Path(tmp, "deps"), manifest)
    return library


def _file_digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _load(path):
    """Open a module's shared library once per process and read its launch table."""
    with _build_lock:
        if path in _libraries:
            return _libraries[path]
        try:
            lib = ctypes.CDLL(str(path), mode=os.RTLD_NOW | os.RTLD_LOCAL)
        except OSError as e:
            raise CompileError(f"the compiled module does not load: {e} (a function declared but never defined?)") from None
        lib.mgemu_abi_version.restype = ctypes.c_int
        if lib.mgemu_abi_version() != _ABI_VERSION:
            raise EmulatorError(f"{path} was built for another version of the emulator; delete it")
        lib.mgemu_num_kernels.restype = ctypes.c_int
        lib.mgemu_kernel.restype = ctypes.POINTER(_KernelDesc)
        lib.mgemu_kernel.argtypes = [ctypes.c_int]
        lib.mgemu_other_kernels.restype = ctypes.c_char_p
        lib.mgemu_launch.restype = ctypes.c_int
        lib.mgemu_launch.argtypes = [ctypes.POINTER(_LaunchDesc)]
        lib.mgemu_message.restype = ctypes.c_char_p
        kernels = {}
        for i in range(lib.mgemu_num_kernels()):
            desc = lib.mgemu_kernel(i)
            kernels[desc.contents.name.decode()] = desc
        others = dict(item.split(":", 1) for item in lib.mgemu_other_kernels().decode().split(";") if item)
        _libraries[path] = (lib, kernels, others)
        return _libraries[path]


class Module:
    """CUDA C++ source compiled for the emulator; the counterpart of ``cupy.RawModule(code=...)``.

    ``options`` takes NVRTC's ``-I``, ``-D``, ``-U`` and ``-std=`` (others are ignored);
    ``name_expressions`` names template kernel instantiations, as in CuPy
    (``name_expressions=["scale<float>"]`` then ``get_function("scale<float>")``).
    """

    def __init__(self, code, options=(), name_expressions=None):
        if not isinstance(code, str):
            raise TypeError(f"Module needs the CUDA source as a str, got {type(code).__name__}")
        reason = available()
        if not reason:
            raise EmulatorError(str(reason))
        name_expressions = tuple(name_expressions or ())
        self.code, self.options = code, tuple(options)
        self._lib, self._kernels, self._others = _load(_build(code, self.options, name_expressions))

    @property
    def kernel_names(self):
        """The kernels that get_function can return."""
        return tuple(self._kernels)

    def get_function(self, name):
        """The kernel ``name`` (an extern "C" __global__ function, or one of the name expressions)."""
        if name in self._kernels:
            return Function(self, name, self._kernels[name].contents)
        why = self._others.get(name)
        if why == "template":
            raise ValueError(f"{name!r} is a __global__ function template: pass name_expressions=['{name}<float>'] "
                             f"(the instantiations you need) to Module, as with cupy.RawModule, then "
                             f"get_function('{name}<float>')")
        if why == "c++ linkage":
            raise ValueError(f"{name!r} is a __global__ function without extern \"C\": its symbol name is mangled, so "
                             f"cupy.RawModule cannot find it by this name either; declare it extern \"C\" "
                             f"(or pass name_expressions=[{name!r}])")
        raise ValueError(f"the module has no kernel named {name!r}; its kernels are {sorted(self._kernels)}")


class _Param:
    """One kernel parameter as the compiler sees it."""

    def __init__(self, index, name, desc):
        self.index, self.name = index, name
        self.kind, self.size = desc.kind, desc.size
        self.pointee_kind, self.pointee_size, self.pointee_const = desc.pointee_kind, desc.pointee_size, desc.pointee_const
        m = re.search(r"\[with T = (.*)\]$", desc.type_name.decode())
        self.ctype = m.group(1) if m else "?"
        self.label = f"argument {index} '{name}'".encode()  # how the runtime names it in fault messages

    def __str__(self):
        return f"{self.ctype} {self.name}".strip()


class Function:
    """One kernel of a Module; call it like a ``cupy.RawKernel``: ``fn(grid, block, args, shared_mem=0)``.

    ``max_dynamic_shared_size_bytes`` works as in CuPy (CUDA's cudaFuncSetAttribute): set it to
    let a launch use more than 48 KB of shared memory, up to SHARED_MEMORY_PER_BLOCK_OPTIN.
    """

    def __init__(self, module, name, desc):
        self.module, self.name = module, name
        self._desc = desc
        names = desc.param_names.decode().split(",") if desc.param_names else []
        if len(names) != desc.num_params:
            names = [""] * desc.num_params
        self.parameters = tuple(_Param(i, names[i], desc.params[i]) for i in range(desc.num_params))
        self._slot = max([16] + [(p.size + 15) // 16 * 16 for p in self.parameters])
        self.max_threads_per_block = desc.max_threads or MAX_THREADS_PER_BLOCK
        self._max_dynamic_shared = None

    def __repr__(self):
        return f"<emulated kernel {self.name}({', '.join(map(str, self.parameters))})>"

    @property
    def max_dynamic_shared_size_bytes(self):
        return SHARED_MEMORY_PER_BLOCK if self._max_dynamic_shared is None else self._max_dynamic_shared

    @max_dynamic_shared_size_bytes.setter
    def max_dynamic_shared_size_bytes(self, value):
        if not isinstance(value, (int, np.integer)) or not 0 <= value <= SHARED_MEMORY_PER_BLOCK_OPTIN:
            raise ValueError(f"kernel '{self.name}': max_dynamic_shared_size_bytes must be an int from 0 to "
                             f"{SHARED_MEMORY_PER_BLOCK_OPTIN} (the device's opt-in limit), got {value!r}")
        self._max_dynamic_shared = int(value)

    def __call__(self, grid, block, args, shared_mem=0, stream=None, enable_cooperative_groups=False):
        """Launch the kernel on ``grid`` blocks of ``block`` threads; returns when it has finished.

        ``stream`` is accepted and ignored: every launch is synchronous.
        """
        grid = self._dims("grid", grid, MAX_GRID_DIM)
        block = self._dims("block", block, MAX_BLOCK_DIM)
        threads = block[0] * block[1] * block[2]
        if threads > self.max_threads_per_block:
            bound = " (its __launch_bounds__)" if self._desc.max_threads else ""
            raise ValueError(f"kernel '{self.name}': a block of {block} is {threads} threads, more than the "
                             f"{self.max_threads_per_block} a block may have{bound}")
        shared_limit = self._shared_limit(shared_mem)
        if not isinstance(args, (tuple, list)):
            raise TypeError(f"kernel '{self.name}': args must be a tuple of arguments, got {type(args).__name__}")
        if len(args) != len(self.parameters):
            raise TypeError(f"kernel '{self.name}' takes {len(self.parameters)} arguments "
                            f"({', '.join(map(str, self.parameters))}), but {len(args)} were given")
        check = _env.flag("MINIGRAD_EMU_CHECK")
        values, arrays = [], []
        for param, value in zip(self.parameters, args):
            values.append(self._pack(param, value, arrays, check))
        self._launch(grid, block, shared_mem, shared_limit, values, arrays, check)

    def _dims(self, what, dims, limits):
        if type(dims) is tuple and len(dims) == 1 and type(dims[0]) is int and 0 < dims[0] <= limits[0]:
            return (dims[0], 1, 1)  # the common case, quickly
        if not isinstance(dims, tuple) or not 1 <= len(dims) <= 3 \
                or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in dims):
            raise TypeError(f"kernel '{self.name}': {what} must be a tuple of 1 to 3 ints (cupy.RawKernel needs a "
                            f"tuple too), got {dims!r}")
        dims = tuple(int(d) for d in dims) + (1,) * (3 - len(dims))
        if any(d < 0 for d in dims):
            raise ValueError(f"kernel '{self.name}': {what} {dims} has a negative dimension")
        dims = tuple(max(d, 1) for d in dims)  # CuPy launches a 0 dimension as 1
        for axis, (d, limit) in enumerate(zip(dims, limits)):
            if d > limit:
                raise ValueError(f"kernel '{self.name}': {what} dimension {'xyz'[axis]} is {d}, more than CUDA's "
                                 f"limit of {limit}")
        return dims

    def _shared_limit(self, shared_mem):
        if not isinstance(shared_mem, (int, np.integer)) or shared_mem < 0:
            raise ValueError(f"kernel '{self.name}': shared_mem must be a non-negative int (bytes), got {shared_mem!r}")
        if self._max_dynamic_shared is None:
            if shared_mem > SHARED_MEMORY_PER_BLOCK:
                raise ValueError(f"kernel '{self.name}' asks for {shared_mem} bytes of dynamic shared memory; without "
                                 f"opting in a kernel gets at most {SHARED_MEMORY_PER_BLOCK} (set "
                                 f"max_dynamic_shared_size_bytes, as cudaFuncSetAttribute does, for up to "
                                 f"{SHARED_MEMORY_PER_BLOCK_OPTIN})")
            return SHARED_MEMORY_PER_BLOCK
        if shared_mem > self._max_dynamic_shared:
            raise ValueError(f"kernel '{self.name}' asks for {shared_mem} bytes of dynamic shared memory, more than "
                             f"its max_dynamic_shared_size_bytes ({self._max_dynamic_shared})")
        return SHARED_MEMORY_PER_BLOCK_OPTIN

    def _where(self, param):
        return f"kernel '{self.name}' argument {param.index} ({param})"

    def _pack(self, param, value, arrays, check):
        """The bytes the kernel receives for one argument, after checking it against the parameter.
        Arrays are also listed in `arrays` as (index, writable, address, bytes, label) for the
        runtime's bounds checks and fault messages."""
        if param.kind == _POINTER:
            if value is None:
                return bytes(8)
            if not isinstance(value, np.ndarray):
                raise TypeError(f"{self._where(param)} takes an array, got {type(value).__name__} {value!r}")
            self._check_array(param, value)
            address = value.ctypes.data
            label = param.label
            if check:  # only then is it likely to be shown
                label = f"{param.label.decode()} ({value.dtype} array of shape {value.shape})".encode()
            arrays.append((param.index, int(value.flags.writeable), address, value.nbytes, label))
            return address.to_bytes(8, sys.byteorder)
        if isinstance(value, np.ndarray):
            raise TypeError(f"{self._where(param)} is passed by value, but got an array (CuPy would pass the "
                            f"array's address as the value)")
        dtype = _scalar_dtype(value)
        if dtype is None:
            raise TypeError(f"{self._where(param)}: cannot pass a {type(value).__name__} to a kernel (pass a NumPy "
                            f"scalar such as numpy.{_suggest(param)}(...))")
        ok_kind = {_FLOAT: "f", _SIGNED: "iu", _UNSIGNED: "iu", _BOOL: "biu"}.get(param.kind, "biufcV")
        if dtype.itemsize != param.size or dtype.kind not in ok_kind:
            raise TypeError(f"{self._where(param)} takes {param.size} bytes ({_kind_name(param.kind)}), but got "
                            f"{_describe_scalar(value)}, "
                            f"{dtype.itemsize} bytes ({dtype}); CuPy would pass those bytes unconverted: pass "
                            f"numpy.{_suggest(param)}(...)")
        return (value if isinstance(value, np.generic) else dtype.type(value)).tobytes()

    def _check_array(self, param, a):
        if not a.flags.c_contiguous:
            raise ValueError(f"{self._where(param)} got an array that is not C-contiguous (shape {a.shape}, strides "
                             f"{a.strides}); CuPy would pass its data pointer regardless and the kernel would read the "
                             f"wrong elements. The emulator refuses: pass numpy.ascontiguousarray(...)")
        if not a.flags.writeable and not param.pointee_const:
            raise ValueError(f"{self._where(param)} points to non-const memory, but the array is read-only; declare "
                             f"the parameter const if the kernel only reads it, or pass a writable array")
        kind, size = param.pointee_kind, param.pointee_size
        fits = {_FLOAT: a.dtype.kind == "f", _SIGNED: a.dtype.kind in "iub", _UNSIGNED: a.dtype.kind in "iub",
                _BOOL: a.dtype.kind in "iub"}.get(kind, True)
        if kind in (_FLOAT, _SIGNED, _UNSIGNED, _BOOL) and not (fits and a.dtype.itemsize == size):
            raise TypeError(f"{self._where(param)} got a {a.dtype} array; the kernel would read its bytes as "
                            f"{size}-byte {_kind_name(kind)} (CuPy does not convert arrays)")

    def _launch(self, grid, block, shared_mem, shared_limit, values, arrays, check):
        # every value in a 16-byte aligned slot of one buffer; args[i] points at slot i
        slot = self._slot
        storage = ctypes.create_string_buffer(b"".join(v.ljust(slot, b"\0") for v in values), slot * len(values) + 16)
        base = ctypes.addressof(storage)
        pointers = (ctypes.c_void_p * max(len(values), 1))(*range(base, base + slot * len(values), slot))
        table = (_ArrayArg * max(len(arrays), 1))(*arrays)
        desc = _LaunchDesc(ctypes.addressof(self._desc), grid, block, int(shared_mem), shared_limit, pointers, table,
                           len(arrays), int(check), _stack_kb() * 1024)
        lib = self.module._lib
        with _launch_lock:
            status = lib.mgemu_launch(ctypes.byref(desc))
            message = lib.mgemu_message().decode(errors="replace") if status else ""
        if status:
            error = _STATUS_ERRORS.get(status, EmulatorError)
            if error is ResourceError:
                message += (f"; without opting in, a block gets {SHARED_MEMORY_PER_BLOCK} bytes (set "
                            f"max_dynamic_shared_size_bytes for up to {SHARED_MEMORY_PER_BLOCK_OPTIN})")
            raise error(message)


def _stack_kb():
    value = _env.setting("MINIGRAD_EMU_STACK_KB", "64")
    if not value.isdigit() or not 16 <= int(value) <= 65536:
        raise ValueError(f"MINIGRAD_EMU_STACK_KB must be a number of kilobytes from 16 to 65536, got {value!r}")
    return int(value)


_PYTHON_SCALARS = {bool: np.dtype(np.bool_), float: np.dtype(np.float64), complex: np.dtype(np.complex128)}


def _scalar_dtype(value):
    """The dtype CuPy passes a scalar as: NumPy scalars keep theirs, bool -> bool, int -> int64
    (uint64 from 2**63), float -> float64, complex -> complex128; None for anything else."""
    if isinstance(value, np.generic):
        return value.dtype
    if type(value) is int:
        return np.dtype(np.uint64 if value >= 2**63 else np.int64) if -2**63 <= value < 2**64 else None
    return _PYTHON_SCALARS.get(type(value))


def _describe_scalar(value):
    if isinstance(value, np.generic):
        return f"numpy.{value.dtype}"
    return f"a Python {type(value).__name__} (CuPy passes it as {_scalar_dtype(value)})"


def _kind_name(kind):
    return {_FLOAT: "floating point", _SIGNED: "integer", _UNSIGNED: "unsigned integer", _BOOL: "bool",
            _POINTER: "pointer"}.get(kind, "data")


def _suggest(param):
    names = {(_FLOAT, 4): "float32", (_FLOAT, 8): "float64", (_SIGNED, 1): "int8", (_SIGNED, 2): "int16",
             (_SIGNED, 4): "int32", (_SIGNED, 8): "int64", (_UNSIGNED, 1): "uint8", (_UNSIGNED, 2): "uint16",
             (_UNSIGNED, 4): "uint32", (_UNSIGNED, 8): "uint64", (_BOOL, 1): "bool_"}
    return names.get((param.kind, param.size), f"void (a {param.size}-byte structured scalar)")


def RawKernel(code, name, options=()):
    """One kernel from source, like ``cupy.RawKernel(code, name, options)``."""
    return Module(code, options).get_function(name)


# ---------------------------------------------------------------------------------------------
# `python -m minigrad.backend.cuda.emulator`: is the emulator available, and how fast is it?
# ---------------------------------------------------------------------------------------------
_BENCHMARK = r"""
extern "C" __global__ void scale_f32(const float* x, float* y, float a, long long n) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * x[i];
}
// 256 threads per block: a shared-memory tree, 9 barriers
extern "C" __global__ void block_sum_f32(const float* x, float* out, long long n) {
    __shared__ float s[256];
    long long i = blockIdx.x * 256LL + threadIdx.x;
    s[threadIdx.x] = i < n ? x[i] : 0.0f;
    __syncthreads();
    for (int k = 128; k > 0; k >>= 1) {
        if (threadIdx.x < k) s[threadIdx.x] += s[threadIdx.x + k];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = s[0];
}
// 256 threads per block: shuffles within each warp, one barrier, shuffles in warp 0
extern "C" __global__ void warp_sum_f32(const float* x, float* out, long long n) {
    __shared__ float partial[8];
    long long i = blockIdx.x * 256LL + threadIdx.x;
    float v = i < n ? x[i] : 0.0f;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = v;
    __syncthreads();
    if (threadIdx.x < 32) {
        v = threadIdx.x < 8 ? partial[threadIdx.x] : 0.0f;
        for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
        if (threadIdx.x == 0) out[blockIdx.x] = v;
    }
}
"""


def _benchmark(n=1_000_000, repeat=5):
    """Best-of-`repeat` times (wall clock and this process's CPU time) of three launches over n
    float32 elements, 256 threads per block, one thread per element."""
    import time  # noqa: PLC0415

    module = Module(_BENCHMARK)
    x = np.random.default_rng(0).random(n, dtype=np.float32)
    blocks = (n + 255) // 256
    y, sums = np.empty_like(x), np.empty(blocks, np.float32)
    cases = [("elementwise y = a*x", "scale_f32", (x, y, np.float32(2), np.int64(n)), lambda: np.allclose(y, 2 * x)),
             ("block reduction, __syncthreads tree", "block_sum_f32", (x, sums, np.int64(n)), None),
             ("block reduction, warp shuffles", "warp_sum_f32", (x, sums, np.int64(n)), None)]
    expected = np.add.reduceat(x.astype(np.float64), np.arange(0, n, 256))
    for label, name, args, check in cases:
        fn = module.get_function(name)
        wall = cpu = float("inf")
        for _ in range(repeat):
            start, start_cpu = time.perf_counter(), time.process_time()
            fn((blocks,), (256,), args)
            wall, cpu = min(wall, time.perf_counter() - start), min(cpu, time.process_time() - start_cpu)
        ok = check() if check else np.allclose(sums, expected, rtol=1e-4)
        print(f"{label:38s} {n:,d} threads: {wall * 1e3:7.1f} ms wall, {cpu * 1e3:7.1f} ms CPU "
              f"({n / cpu / 1e6:5.1f} M threads per CPU second){'' if ok else '  WRONG RESULT'}")


if __name__ == "__main__":
    reason = available()
    print(f"CUDA emulator: {'available' if reason else reason}")
    if reason:
        _benchmark()
