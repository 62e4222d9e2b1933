"""FP16 graphs with FP32 islands, the form TensorRT >= 11 (strongly typed) builds as it is.

The FP32 graph is traced again with every LayerNorm written out as ONNX defines it (mean, centred
square, mean, sqrt, divide), then converted to FP16 with ONNX Runtime's float16 converter, keeping
chosen ops in FP32 (the converter inserts the casts). Inputs stay uint8 / int32 / int64, outputs
FP32. Writing LayerNorm out makes the FP32 island explicit for every runtime: a fused
LayerNormalization in FP16 computes its statistics in FP16 on some backends (TensorRT warns about
exactly that overflow), while ONNX Runtime's CPU kernel silently widens them.

Islands (measured on tiny_dev with ONNX Runtime CPU, see benchmarks/NOTES.md):
  layernorm_stats  ReduceMean, Pow, Sqrt: the squares of LayerNorm inputs overflow FP16 (max 65504)
                   once a channel reaches ~256; CLIP's outlier channels reach 1e3-1e4.
  softmax          Softmax
  l2norm           ReduceL2 (final normalisation of embeddings)
  resize           Resize (input 0.5x, positional-embedding bicubic, fusion bilinear)
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper
from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16
from sanrt.runtime.errors import ConfigError

ISLANDS = {  # island -> op types kept in FP32 (layernorm_stats is found by pattern instead)
    "layernorm_stats": (),
    "softmax": ("Softmax",),
    "l2norm": ("ReduceL2",),
    "resize": ("Resize",),
}
DEFAULT_ISLANDS = ("layernorm_stats",)


def to_fp16(model: onnx.ModelProto, islands=DEFAULT_ISLANDS) -> onnx.ModelProto:
    """FP32 graph (LayerNorm written out) -> FP16 graph keeping `islands` in FP32."""
    unknown = [i for i in islands if i not in ISLANDS]
    if unknown:
        raise ConfigError(f"unknown FP32 islands {unknown}; choose from {sorted(ISLANDS)}")
    block = sorted({op for i in islands for op in ISLANDS[i]})
    nodes = layernorm_stat_nodes(model) if "layernorm_stats" in islands else []
    # the converter's default block list holds ops it cannot convert; ours adds the islands
    m16 = convert_float_to_float16(model, keep_io_types=True, op_block_list=list(DEFAULT_OP_BLOCK_LIST) + block,
                                   node_block_list=nodes)
    return drop_cast_round_trips(m16)


def fp16_weight_floor(model: onnx.ModelProto) -> onnx.ModelProto:
    """The FP32 graph with its weights rounded to FP16 and everything else FP32: the error every FP16
    graph inherits from storing its weights in FP16, whatever its islands. Comparing an FP16 graph
    with this floor separates the conversion's own loss from the model's sensitivity to rounding."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for init in m.graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT:
            w = numpy_helper.to_array(init)
            init.CopyFrom(numpy_helper.from_array(w.astype(np.float16).astype(np.float32), init.name))
    return m


def drop_cast_round_trips(model: onnx.ModelProto) -> onnx.ModelProto:
    """Remove FP32 -> FP16 -> FP32 Cast pairs. The converter casts every kept-FP32 node's output
    back to FP16, also between two FP32 nodes: the square of a LayerNorm input would then pass
    through FP16 and overflow inside the very island meant to prevent it."""
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    graph_outputs = {o.name for o in g.output}

    def cast_to(n) -> int | None:
        return next((a.i for a in n.attribute if a.name == "to"), None) if n.op_type == "Cast" else None

    drop, rename = set(), {}
    for down in g.node:
        if cast_to(down) != onnx.TensorProto.FLOAT:
            continue
        up = producer.get(down.input[0])
        if up is None or cast_to(up) != onnx.TensorProto.FLOAT16 or down.output[0] in graph_outputs:
            continue
        rename[down.output[0]] = up.input[0]  # read the FP32 value directly
        drop.add(down.name)
        if all(c.name in drop or cast_to(c) == onnx.TensorProto.FLOAT for c in consumers[up.output[0]]):
            drop.add(up.name)
    for n in g.node:
        for j, i in enumerate(n.input):
            if i in rename:
                n.input[j] = rename[i]
    keep = [n for n in g.node if n.name not in drop]
    del g.node[:]
    g.node.extend(keep)
    return model


def layernorm_stat_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the statistics nodes of every written-out LayerNorm: the mean, the square of the
    centred input, its mean, + epsilon, and the square root (the centring and the division stay
    FP16: their values are no larger than the input's)."""
    producer = {o: n for n in model.graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def only(nodes, op):
        hits = [n for n in nodes if n.op_type == op]
        return hits[0] if len(hits) == 1 else None

    names = []
    for pw in (n for n in model.graph.node if n.op_type == "Pow"):
        var = only(consumers.get(pw.output[0], []), "ReduceMean")
        add = var and only(consumers.get(var.output[0], []), "Add")
        sqrt = add and only(consumers.get(add.output[0], []), "Sqrt")
        sub = producer.get(pw.input[0])
        mean = sub is not None and sub.op_type == "Sub" and producer.get(sub.input[1])
        if not (sqrt and mean and mean.op_type == "ReduceMean"):
            continue
        names += [mean.name, pw.name, var.name, add.name, sqrt.name]
    if not names:
        raise ValueError("no written-out LayerNorm found: trace the graph under explicit_layer_norm()")
    return names
