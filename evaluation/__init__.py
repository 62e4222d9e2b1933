"""How good an export's answers are: one comparison engine, dataset mIoU, and the verification
that the runtime's automatic backend choice rests on.

- compare.py: tensors and label maps against a reference, with error bounds and near-ties counted
  apart (the one engine every parity check, test and benchmark uses).
- miou.py: detectron2's SemSegEvaluator metrics in numpy over (image, label) pairs.
- photos.py: the sample photos every parity check and benchmark segments.
- verify.py: every backend path of an export against reference answers -> verified.json.

The folder's contract: torch-free; it imports sanrt.runtime only. References computed with PyTorch
(sanrt.model) are passed in by the caller.
"""
