"""The meta-test: every registered (differentiable) op has a gradient-check test.

Every ``tests/test_*.py`` module is imported (by path, with importlib) so that its
``@covers(...)`` declarations are registered in ``tests.coverage.COVERED``; every package
module is imported so that every ``@register``-ed op is in ``minigrad.autograd.REGISTRY``.
Then each registered op must be covered by a gradcheck test, and, unless its class is
``once_differentiable``, by a gradgradcheck test.  (``@covers`` itself checks, when its test
runs, that the declared ops really went through gradcheck.)
"""
import importlib
import importlib.util
import pathlib
import pkgutil
import sys

import pytest

import minigrad
from minigrad.autograd import REGISTRY, Function, register
from tests.coverage import COVERED

TESTS = pathlib.Path(__file__).resolve().parent
OPTIONAL = {"cupy", "cupyx", "torch", "matplotlib", "graphviz"}  # extras a module may need


def import_package_modules():
    """Import every module of minigrad, so every op that registers itself is in REGISTRY."""
    for info in pkgutil.walk_packages(minigrad.__path__, prefix="minigrad."):
        try:
            importlib.import_module(info.name)
        except ModuleNotFoundError as e:
            if (e.name or "").split(".")[0] not in OPTIONAL:
                raise


def import_test_modules():
    """Import every tests/test_*.py by path (their @covers run at import) and return them."""
    modules = []
    for path in sorted(TESTS.glob("test_*.py")):
        name = f"tests.{path.stem}"
        module = sys.modules.get(name)
        if module is None:
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[name]
                raise
        modules.append(module)
    return modules


def missing_coverage(registry, covered):
    """(ops without a gradcheck test, differentiable-twice ops without a gradgradcheck test)."""
    once = sorted(name for name in registry if name not in covered[1])
    twice = sorted(name for name, cls in registry.items()
                   if not cls.once_differentiable and name not in covered[2])
    return once, twice


def test_every_registered_op_has_gradient_check_tests():
    import_package_modules()
    modules = import_test_modules()
    assert any(m.__name__ == "tests.test_ops_elementwise" for m in modules)
    assert {"Add", "Exp", "Where"} <= set(REGISTRY)  # the registry really is populated
    no_check, no_double_check = missing_coverage(REGISTRY, COVERED)
    assert not no_check, (
        f"registered ops without a gradcheck test (@covers): {', '.join(no_check)}"
    )
    assert not no_double_check, (
        "registered ops (not once_differentiable) without a gradgradcheck test "
        f"(@covers(..., twice=True)): {', '.join(no_double_check)}"
    )


def test_a_registered_op_without_coverage_is_detected():
    @register
    class _UncoveredFakeOp(Function):
        def forward(self, x):
            return x

        def backward(self, g):
            return g

    @register
    class _UncoveredFusedFakeOp(Function):
        once_differentiable = True

    try:
        covered = {1: set(COVERED[1]) | {"_UncoveredFusedFakeOp"}, 2: set(COVERED[2])}
        no_check, no_double_check = missing_coverage(REGISTRY, covered)
        assert "_UncoveredFakeOp" in no_check and "_UncoveredFakeOp" in no_double_check
        # once-differentiable ops need a gradcheck but no gradgradcheck
        assert "_UncoveredFusedFakeOp" not in no_check
        assert "_UncoveredFusedFakeOp" not in no_double_check
        with pytest.raises(AssertionError, match="without a gradcheck test.*_UncoveredFakeOp"):
            test_every_registered_op_has_gradient_check_tests()
    finally:
        del REGISTRY["_UncoveredFakeOp"]
        del REGISTRY["_UncoveredFusedFakeOp"]
    assert "_UncoveredFakeOp" not in REGISTRY
