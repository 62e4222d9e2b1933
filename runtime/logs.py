"""Quiet by default: sanrt's own warnings as one `warning:` line each; third-party log spam (NNCF,
OpenVINO, ONNX Runtime) hidden unless --verbose."""
from __future__ import annotations

import logging
import os
import sys
import warnings

NOISY = ("nncf", "openvino", "onnxruntime", "polygraphy")
_verbose = False


class _OneLine(logging.Formatter):
    """`warning: message` (as the CLIs print `error: message`); the logger's name too when verbose."""

    def __init__(self, verbose: bool):
        super().__init__()
        self.verbose = verbose

    def format(self, record):
        where = f" {record.name}" if self.verbose else ""
        return f"{record.levelname.lower()}{where}: {record.getMessage()}"


def tame(name: str) -> None:
    """Apply the verbosity to a library's logger again: some (NNCF) reset their level on import."""
    logging.getLogger(name).setLevel(logging.INFO if _verbose else logging.ERROR)


def setup(verbose: bool = False) -> None:
    global _verbose
    _verbose = verbose
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine(verbose))
    sanrt = logging.getLogger("sanrt")
    sanrt.handlers[:] = [handler]
    sanrt.propagate = False
    sanrt.setLevel(logging.INFO if verbose else logging.WARNING)
    for name in NOISY:
        tame(name)
    if not verbose:
        logging.getLogger().setLevel(logging.ERROR)  # libraries that log to the root logger (ORT's quantizer)
        os.environ.setdefault("ORT_LOGGING_LEVEL", "3")
        warnings.filterwarnings("ignore", module="(nncf|openvino|onnxruntime)")
