"""Prove sanrt's PyTorch SAN is the official SAN: compare every stage against a fixture folder.

    python benchmarks/reference_parity.py tests/data/official/tiny_dev

Prints a table (image, stage under sanrt's name, max abs err, err / max|ref|, label agreement) and,
as its last line, the comparison's summary as one JSON object. Exits 1 when any stage's
err / max|ref| exceeds 1e-4 or label agreement is under 99.99 %.
"""
from __future__ import annotations

import argparse
import json
import sys

from sanrt.model.reference import check_fixture
from sanrt.runtime import cli


def main(argv=None) -> int:
    return cli.run(_main, argv)


def _main(argv) -> int:
    ap = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", help="fixture folder: tiny_config.json, checkpoint.pth, vocabulary.txt, *.npz")
    args = ap.parse_args(argv)
    report = check_fixture(args.folder, progress=lambda name: print(f"checked {name}", file=sys.stderr))
    print(report.table())
    print("; ".join(report.failures()) or "PASS")
    print(json.dumps({"images": report.info["images"], **report.summary()}))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
