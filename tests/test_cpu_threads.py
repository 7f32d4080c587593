"""backend/cpu_threads.py: the BLAS's thread count, and ``concurrently``, which runs independent
pieces of CPU work one per core (the two directions of a bidirectional recurrent layer)."""
import threading
import warnings

import numpy as np
import pytest

from minigrad.backend import cpu_threads

needs_openblas = pytest.mark.skipif(cpu_threads.openblas() is None,
                                    reason="NumPy's BLAS is not OpenBLAS: its thread count cannot be set")


@pytest.fixture
def blas():
    """Set the BLAS's thread count for the test (any count can be set, whatever the cores);
    put it back afterwards."""
    before = cpu_threads.blas_threads()
    yield cpu_threads.blas_threads
    cpu_threads.blas_threads(before)


def _recording(log, value):
    def task():
        log.append((threading.get_ident(), cpu_threads.blas_threads()))
        return value
    return task


@needs_openblas
def test_pieces_run_on_their_own_threads_with_a_one_thread_blas(blas):
    blas(2)
    log = []
    assert cpu_threads.concurrently([_recording(log, "a"), _recording(log, "b")], like=np.zeros(1)) == ["a", "b"]
    assert len({ident for ident, _ in log}) == 2  # two threads
    assert [n for _, n in log] == [1, 1]          # each product on one BLAS thread
    assert blas() == 2                            # and the count put back


@needs_openblas
def test_more_pieces_than_threads_are_shared_out_in_order(blas):
    blas(2)
    log = []
    tasks = [_recording(log, k) for k in range(5)]
    assert cpu_threads.concurrently(tasks, like=np.zeros(1)) == [0, 1, 2, 3, 4]
    assert len({ident for ident, _ in log}) == 2
    assert blas() == 2


@pytest.mark.parametrize("case", ["one BLAS thread", "GPU array", "one task", "nested"])
def test_one_after_another_where_there_is_nothing_to_share(blas, case):
    """One BLAS thread, an array that is not NumPy's, a single task, and a region already
    running (a piece that itself calls concurrently): the caller's thread runs every piece."""
    if case != "GPU array" and cpu_threads.openblas() is None:
        pytest.skip("NumPy's BLAS is not OpenBLAS")
    if cpu_threads.openblas() is not None:
        blas(1 if case == "one BLAS thread" else 2)
    log = []
    like = [0.0] if case == "GPU array" else np.zeros(1)  # (any array type but NumPy's)
    tasks = [_recording(log, 1)] if case == "one task" else [_recording(log, 1), _recording(log, 2)]
    if case == "nested":
        inner = []
        outer = [lambda: cpu_threads.concurrently([_recording(inner, 1), _recording(inner, 2)], like=np.zeros(1)),
                 lambda: None]
        assert cpu_threads.concurrently(outer, like=np.zeros(1)) == [[1, 2], None]
        assert len({ident for ident, _ in inner}) == 1
        return
    cpu_threads.concurrently(tasks, like=like)
    assert {ident for ident, _ in log} == {threading.get_ident()}


@needs_openblas
def test_an_error_is_raised_after_every_piece_has_finished(blas):
    """The first failing piece's error reaches the caller; the other pieces still run to the
    end (they write into shared outputs), and the BLAS's thread count is put back."""
    blas(2)
    finished = []

    def fails(message):
        def task():
            finished.append(message)
            raise ValueError(message)
        return task
    with pytest.raises(ValueError, match="first"):
        cpu_threads.concurrently([fails("first"), fails("second"), lambda: finished.append("third")], like=np.zeros(1))
    assert sorted(finished) == ["first", "second", "third"]
    assert blas() == 2
    assert cpu_threads.concurrently([lambda: 1, lambda: 2], like=np.zeros(1)) == [1, 2]  # the region was released


@needs_openblas
def test_pieces_see_the_callers_numpy_errstate(blas):
    """np.errstate is a context variable: a piece on another thread obeys the caller's, so a
    floating-point error raises (or stays quiet) there as it would in the caller's thread."""
    blas(2)
    one, zero = np.ones(3, dtype=np.float32), np.zeros(3, dtype=np.float32)
    with np.errstate(divide="raise"):
        with pytest.raises(FloatingPointError):
            cpu_threads.concurrently([lambda: one + one, lambda: one / zero], like=one)
    with np.errstate(divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning would fail the test
        results = cpu_threads.concurrently([lambda: one / zero, lambda: one / zero], like=one)
    assert all(np.isinf(r).all() for r in results)
