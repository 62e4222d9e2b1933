"""Batch segmentation of many images on Ray Data (sanrt-batch): infer.py's files for each image,
resumable and fault-tolerant, on one machine or a Ray cluster.

    from sanrt.batch import segment_dataset
    summary = segment_dataset("out/onnx/vit_b_16", "photos/", ["cat", "sofa"], "out/seg", actors=2)

Its stages are plain functions of Arrow tables and one actor class (`plan_batch`, `decode_batch`,
`SegmentActor`), so they slot into a user's own Ray Data pipeline (`map_batches`).

The folder's contract: torch-free; it imports sanrt.runtime and itself only (plus Ray and pyarrow,
the `batch` extra), and nothing imports it but the benchmarks. job.py is the command line,
pipeline.py the job, stages.py what runs on the cluster, sources.py what --images names,
folder.py the output folder's names and checks.
"""
from .pipeline import ClusterError, Summary, make_vocabulary, read_results, segment_dataset
from .sources import ImageList, image_paths
from .stages import DECODED_SCHEMA, RESULT_SCHEMA, SegmentActor, SharedVocabulary, decode_batch, plan_batch

__all__ = ["segment_dataset", "Summary", "ClusterError", "SegmentActor", "SharedVocabulary", "decode_batch",
           "plan_batch", "make_vocabulary", "read_results", "ImageList", "image_paths", "RESULT_SCHEMA", "DECODED_SCHEMA"]
