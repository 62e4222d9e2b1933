"""Requests to the `san` model of an sanrt Triton repository, with tritonclient (HTTP or gRPC).

    import tritonclient.http as httpclient
    client = httpclient.InferenceServerClient("127.0.0.1:8000")
    res = client.infer("san", request_inputs(httpclient, image, ("classes", ["cat", "sofa"])))
    labels = res.as_numpy("LABELS")
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image


def request_inputs(mod, image: np.ndarray, vocab: tuple, encoded: bool = True, expand: str | None = None) -> list:
    """tritonclient InferInputs for the `san` model (mod: tritonclient.http or .grpc): an RGB uint8
    image, sent as PNG bytes (encoded) or raw pixels, a vocabulary ("classes", [names]) or
    ("dataset", key), and optionally a vocabulary expansion ("coco-all", "coco-stuff")."""
    inputs = []
    if encoded:
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="PNG")
        t = mod.InferInput("IMAGE", [1], "BYTES")
        t.set_data_from_numpy(np.array([buf.getvalue()], dtype=np.object_))
    else:
        t = mod.InferInput("IMAGE_RGB", list(image.shape), "UINT8")
        t.set_data_from_numpy(image)
    inputs.append(t)
    kind, value = vocab
    if kind == "classes":
        t = mod.InferInput("CLASSES", [len(value)], "BYTES")
        t.set_data_from_numpy(np.array([v.encode() for v in value], dtype=np.object_))
    else:
        t = mod.InferInput("DATASET", [1], "BYTES")
        t.set_data_from_numpy(np.array([value.encode()], dtype=np.object_))
    inputs.append(t)
    if expand is not None:
        t = mod.InferInput("EXPAND", [1], "BYTES")
        t.set_data_from_numpy(np.array([expand.encode()], dtype=np.object_))
        inputs.append(t)
    return inputs
