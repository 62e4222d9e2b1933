"""Quiet by default: sanrt's own warnings as one `warning:` line each; third-party log spam (NNCF,
OpenVINO, ONNX Runtime) hidden unless --verbose."""
from __future__ import annotations

import logging
import os
import sys
import warnings

NOISY = ("nncf", "openvino", "onnxruntime", "polygraphy")
_verbose = False


def tame(name: str) -> None:
    """Apply the verbosity to a library's logger again: some (NNCF) reset their level on import."""
    logging.getLogger(name).setLevel(logging.INFO if _verbose else logging.ERROR)


def setup(verbose: bool = False) -> None:
    global _verbose
    _verbose = verbose
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s" if not verbose else
                                           "%(levelname)s %(name)s: %(message)s"))
    logging.addLevelName(logging.WARNING, "warning")
    sanrt = logging.getLogger("sanrt")
    sanrt.handlers[:] = [handler]
    sanrt.propagate = False
    sanrt.setLevel(logging.INFO if verbose else logging.WARNING)
    for name in NOISY:
        tame(name)
    if not verbose:
        os.environ.setdefault("ORT_LOGGING_LEVEL", "3")
        warnings.filterwarnings("ignore", module="(nncf|openvino|onnxruntime)")
