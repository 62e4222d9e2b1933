"""The fuzz tests of tests/test_fuzz.py, run for longer (hypothesis's "long" profile, fresh seeds).

    python benchmarks/fuzz.py [--minutes 10]

Stops at the first counterexample (printed by hypothesis, with the input that breaks the property)
or after --minutes; exit 0 only when nothing broke.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10)
    args = ap.parse_args(argv)
    env = dict(os.environ, SANRT_FUZZ_PROFILE="long")
    try:
        p = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", str(ROOT / "tests" / "test_fuzz.py")],
                           env=env, timeout=args.minutes * 60)
        return p.returncode
    except subprocess.TimeoutExpired:
        print(f"no counterexample in {args.minutes:g} minutes", file=sys.stderr)
        return 0


if __name__ == "__main__":
    sys.exit(main())
