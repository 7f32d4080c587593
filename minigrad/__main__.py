"""``python -m minigrad``: version, devices and a self-test; ``python -m minigrad doctor``: the
whole environment (see minigrad/diagnostics.py)."""
import argparse

from .diagnostics import report


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m minigrad",
                                     description="minigrad's version, devices and a self-test.")
    parser.add_argument("command", nargs="?", choices=["doctor"],
                        help="doctor: also the versions of NumPy, numba, CuPy, CUDA and a kernel smoke test")
    args = parser.parse_args(argv)
    report(full=args.command == "doctor")


if __name__ == "__main__":
    main()
