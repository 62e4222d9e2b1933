"""sanrt's torch-free runtime: numpy + ONNX Runtime / OpenVINO / TensorRT only.

    from sanrt.runtime import Segmenter, dataset_vocabulary, load_image
    seg = Segmenter("out/onnx/vit_b_16")                   # backend="auto", as the CLI
    vocab = seg.vocabulary(["cat", "sofa", "floor"])        # an immutable value
    [res] = seg.segment([load_image("a.jpg")], vocab)       # res.labels [H, W]; res.classes_present()

A Segmenter keeps no per-request state: one object serves many threads and vocabularies at once.
Everything a user can cause raises a `SanrtError`.

The folder's contract: nothing here imports torch, or any sanrt package but this one (serving,
evaluation, model, export and benchmarks build on it, never the other way). Inside it, `backends/`
imports only the leaves (errors, files, machine); loader.py turns arguments into runners, text.py names
into class weights, segmenter.py images into label maps; manifest.py and datasets.py are the
registries of exports and datasets.
"""
from .backends import PATHS, PRECISIONS
from .datasets import DATASET_TITLES, DATASETS, dataset, dataset_vocabulary
from .errors import (BackendError, ConfigError, ExportFolderError, ImageError, OutputError, RangeError, SanrtError,
                     VideoError, VocabularyError)
from .images import decode_image, expand_image_args, load_image, to_rgb_u8
from .manifest import Manifest
from .outputs import SegmentationWriter
from .results import ClassPresent, EncodedBatch, Segmentation
from .segmenter import Segmenter
from .text import Vocabulary, class_weights
from .vocabulary import check_vocabulary, read_vocabulary_file

__all__ = [
    "Segmenter", "Vocabulary", "Segmentation", "EncodedBatch", "ClassPresent", "SegmentationWriter", "Manifest",
    "load_image", "decode_image", "to_rgb_u8", "expand_image_args", "class_weights",
    "dataset_vocabulary", "dataset", "DATASETS", "read_vocabulary_file", "check_vocabulary", "DATASET_TITLES",
    "PATHS", "PRECISIONS",
    "SanrtError", "ConfigError", "ExportFolderError", "ImageError", "BackendError", "RangeError", "VocabularyError", "OutputError", "VideoError",
]
