"""sanrt's torch-free runtime: numpy + ONNX Runtime / OpenVINO / TensorRT only.

    from sanrt.runtime import Segmenter, dataset_vocabulary, load_image
    seg = Segmenter("out/onnx/vit_b_16")                   # backend="auto", as the CLI
    vocab = seg.vocabulary(["cat", "sofa", "floor"])        # an immutable value
    [res] = seg.segment([load_image("a.jpg")], vocab)       # res.labels [H, W]; res.classes_present()

A Segmenter keeps no per-request state: one object serves many threads and vocabularies at once.
Everything a user can cause raises a `SanrtError`.
"""
from .backends import PRECISIONS
from .errors import (BackendError, ConfigError, ExportFolderError, ImageError, OutputError, RangeError, SanrtError,
                     VocabularyError)
from .images import decode_image, expand_image_args, load_image, to_rgb_u8
from .outputs import SegmentationWriter
from .segmenter import ClassPresent, EncodedBatch, Segmentation, Segmenter, Vocabulary
from .vocabulary import DATASET_TITLES, check_vocabulary, dataset_vocabulary, read_vocabulary_file

__all__ = [
    "Segmenter", "Vocabulary", "Segmentation", "EncodedBatch", "ClassPresent", "SegmentationWriter",
    "load_image", "decode_image", "to_rgb_u8", "expand_image_args",
    "dataset_vocabulary", "read_vocabulary_file", "check_vocabulary", "DATASET_TITLES", "PRECISIONS",
    "SanrtError", "ConfigError", "ExportFolderError", "ImageError", "BackendError", "RangeError", "VocabularyError", "OutputError",
]
