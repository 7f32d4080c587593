"""Which registered ops have gradient-check tests.

A test declares the ops it checks with ``@covers("Exp", "Log", twice=True)``; after the test
ran, the decorator asserts those ops really appeared in a graph that gradcheck (or, with
``twice``, gradgradcheck) checked, so a declaration cannot claim more than the test does.
gradcheck also edits every tensor each op was given in place after the forward (the engine
must refuse the backward, or the gradient must not change), and ``covers`` asserts that this
ran for the declared ops too: so every registered op has that check, registry-wide.
tests/test_registry.py then fails if any registered op is not covered.
"""
import functools

from minigrad.gradcheck import observers

#: the ops each kind of check saw since the last reset (filled through gradcheck.observers)
CHECKED = {"gradcheck": set(), "gradgradcheck": set(), "inplace": set()}
observers.append(lambda kind, names: CHECKED[kind].update(names))

COVERED = {1: set(), 2: set()}


def covers(*ops, twice=False):
    def decorate(test):
        COVERED[1].update(ops)
        if twice:
            COVERED[2].update(ops)

        @functools.wraps(test)
        def run(*args, **kwargs):
            for seen in CHECKED.values():
                seen.clear()
            test(*args, **kwargs)
            missing = set(ops) - CHECKED["gradcheck"]
            assert not missing, f"{test.__name__} declares {sorted(missing)} but gradcheck never saw them"
            missing = set(ops) - CHECKED["inplace"]
            assert not missing, (f"{test.__name__} declares {sorted(missing)} but gradcheck never edited "
                                 "their inputs in place (check_inplace=False?)")
            if twice:
                missing = set(ops) - CHECKED["gradgradcheck"]
                assert not missing, f"{test.__name__} declares {sorted(missing)} but gradgradcheck never saw them"

        return run

    return decorate
