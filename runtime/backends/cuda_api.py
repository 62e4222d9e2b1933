"""The CUDA runtime through cuda-python (NVIDIA's bindings; no torch): import and error checks.

Not named cuda.py: `python runtime/infer.py` puts runtime/ first on sys.path, where that name would
shadow cuda-python's own `cuda` package (tests/test_layout.py)."""
from __future__ import annotations

from ..errors import BackendError


def cudart():
    """cuda-python's runtime module (cuda.bindings.runtime; cuda.cudart before cuda-python 12.6)."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        try:
            from cuda import cudart as runtime
        except ImportError:
            raise BackendError("cuda-python is not installed (pip install 'sanrt[gpu]'); TensorRT needs a CUDA GPU") from None
    return runtime


def check(result: tuple, what: str):
    """cuda-python returns (error, *values): the values, or BackendError naming the failed step."""
    err, *values = result
    if int(err) != 0:
        rt = cudart()
        text = rt.cudaGetErrorString(err)[1]
        text = text.decode() if isinstance(text, bytes) else str(text)
        raise BackendError(f"CUDA {what} failed: {text}")
    return values[0] if len(values) == 1 else (tuple(values) or None)
