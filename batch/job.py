"""Segment many images on Ray Data: infer.py's files for every image, resumable, across a cluster.

    sanrt-batch --export out/onnx/vit_b_16 --images photos/ --dataset ade150 --out out/seg
    sanrt-batch --export EXPORT --images list.parquet --vocab "cat,sofa,floor" --out /shared/seg \\
                --address auto --actors 8 --threads-per-actor 4 --overlays

--images: a folder, a glob, an image, a text file of paths (one a line) or a Parquet file with a
`path` column, local or a pyarrow file-system URI (s3://, gs://, hdfs://, file://). Per image <name>_labels.png, <name>.json (and <name>_overlay.png with --overlays) in
--out, as infer.py writes them, plus one results.parquet (a row per image: ok, error or skipped).
A rerun skips images whose outputs are complete; --force recomputes them. A bad image is an error
row and the job goes on; a job that cannot run is one `error:` line and exit code 2.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def parse_args(argv):
    from sanrt.runtime import cli

    ap = cli.ArgumentParser(prog="sanrt-batch", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_export_argument(ap, required=True)
    ap.add_argument("--images", required=True, nargs="+", metavar="SRC",
                    help="a folder, glob, image, text file of paths or Parquet file with a 'path' column; "
                         "local or a URI (s3://bucket/photos/)")
    cli.add_vocabulary_arguments(ap)
    ap.add_argument("--out", required=True, type=Path, help="output folder (on a cluster: one every node sees)")
    ap.add_argument("--address", default="local",
                    help="local (a private Ray instance on this machine, the default), auto (the running cluster "
                         "this machine belongs to) or HOST:PORT of a cluster's head")
    ap.add_argument("--actors", type=int, default=1, help="Segmenters (Ray actors), one model each (default 1)")
    ap.add_argument("--threads-per-actor", type=int, default=None,
                    help="CPU threads (and Ray CPUs) per actor (default: the CPUs shared out among the actors)")
    ap.add_argument("--batch", type=int, default=4, help="images per actor call (default 4)")
    ap.add_argument("--overlays", action="store_true", help="also write <name>_overlay.png")
    ap.add_argument("--force", action="store_true", help="recompute images whose outputs are complete")
    ap.add_argument("--backend", default="auto", help="auto, onnxruntime or openvino (as infer.py's)")
    ap.add_argument("--verbose", action="store_true", help="show Ray's own log lines and progress bars")
    return ap.parse_args(argv)


def run(args) -> int:
    from sanrt.batch.pipeline import segment_dataset
    from sanrt.runtime import cli

    names = cli.vocabulary_names(args)
    s = segment_dataset(args.export, args.images, names, args.out, expand=args.expand, address=args.address,
                        actors=args.actors, threads_per_actor=args.threads_per_actor, batch=args.batch,
                        overlays=args.overlays, force=args.force, backend=args.backend, verbose=args.verbose)
    rate = f", {s.images_per_s:.2f} images/s" if s.ok + s.error else ""
    print(f"{s.ok} ok, {s.error} error, {s.skipped} skipped in {s.seconds:.1f} s{rate}; results in {s.results}",
          file=sys.stderr)
    return 0


def main(argv=None) -> int:
    try:
        from sanrt.runtime import cli
    except KeyboardInterrupt:
        print("interrupted: nothing half-written was left", file=sys.stderr)
        return 130
    return cli.run(_main, argv)


def _main(argv) -> int:
    from importlib.util import find_spec

    from sanrt.runtime import logs
    from sanrt.runtime.errors import BackendError

    args = parse_args(argv)
    logs.setup(args.verbose)
    missing = [m for m in ("ray", "pyarrow") if find_spec(m) is None]  # found, not imported: Ray is set up first
    if missing:
        raise BackendError(f"sanrt-batch needs Ray Data and pyarrow ({', '.join(missing)} missing): "
                           "pip install 'sanrt[batch]'")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
