"""Write a Triton model repository for an sanrt export.

    python export/to_triton.py --engine out/onnx/vit_b_16/engines --out triton_repo --image-backend tensorrt
    python export/to_triton.py --engine out/onnx/vit_b_16 --out triton_repo --image-backend onnxruntime --instances 2
    python export/to_triton.py --engine out/onnx/vit_b_16 --out triton_repo --image-backend python \\
        --python-env .venv-triton      # the bundled CPU tritonserver (Python backend only)

Models: san_image (dynamic batching), san_text, san_head and san (the pipeline, Python backend).
See README "Serving".
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from sanrt.runtime import cli
from sanrt.runtime.errors import SanrtError
from sanrt.serving.repository import IMAGE_BACKENDS, write_repository


def site_packages(env: Path) -> list[str]:
    """The site-packages of a Python environment (a venv folder) for the Python-backend models."""
    py = env / "bin" / "python"
    if not py.is_file():
        raise SanrtError(f"--python-env {env} is not a Python environment (no bin/python)")
    out = subprocess.run([str(py), "-c", "import site; print(site.getsitepackages()[0])"], capture_output=True,
                         text=True, timeout=60)
    return [out.stdout.strip()]


def main(argv=None) -> int:
    return cli.run(_main, argv)


def _main(argv) -> int:
    ap = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # --engine as in infer.py: what the server runs, an export folder or its TensorRT engine folder
    ap.add_argument("--engine", "--export", dest="engine", type=Path, required=True,
                    help="an sanrt export folder, or its TensorRT engine folder for --image-backend tensorrt")
    ap.add_argument("--out", type=Path, required=True, help="repository folder to write (new, empty, or an earlier sanrt repository)")
    ap.add_argument("--image-backend", choices=IMAGE_BACKENDS, default="onnxruntime",
                    help="Triton backend of the graph models (python: sanrt's ONNX Runtime runner in the Python backend)")
    ap.add_argument("--max-batch", type=int, default=None, help="largest image batch (default: the export's)")
    ap.add_argument("--instances", type=int, default=1, help="instances of the image model (per GPU on TensorRT)")
    ap.add_argument("--pipeline-instances", type=int, default=4,
                    help="instances of the san pipeline (each waits on the graph models; several feed dynamic batching)")
    ap.add_argument("--queue-delay-us", type=int, default=2000, help="dynamic batching: longest wait for a batch")
    ap.add_argument("--python-env", type=Path, help="Python environment whose sanrt the Python-backend models import "
                                                    "(default: the stub's own Python, as in NVIDIA's container)")
    args = ap.parse_args(argv)
    if min(args.instances, args.pipeline_instances) < 1:
        raise SanrtError("--instances and --pipeline-instances must be at least 1")
    if args.queue_delay_us < 0:
        raise SanrtError("--queue-delay-us must be 0 or more")
    configs = write_repository(args.engine, args.out, args.image_backend, args.max_batch, args.instances,
                               site_packages(args.python_env) if args.python_env else None, args.queue_delay_us,
                               pipeline_instances=args.pipeline_instances)
    print(f"wrote {args.out}: {', '.join(configs)} ({args.image_backend} graph models)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
