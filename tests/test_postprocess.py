"""The runtime's numpy post-processing equals the official PyTorch one."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sanrt.model.postprocess import semantic_inference as torch_semantic_inference
from sanrt.runtime.postprocess import bilinear_matrix, semantic_inference
from sanrt.evaluation.compare import label_agreement


@pytest.mark.parametrize("out_size,in_size", [(640, 40), (37, 40), (40, 40), (97, 13), (5, 80)])
def test_bilinear_matrix_equals_interpolate(out_size, in_size):
    x = torch.from_numpy(np.random.default_rng(out_size * in_size).standard_normal((3, in_size, 1)).astype(np.float32))
    ref = F.interpolate(x[None], size=(out_size, 1), mode="bilinear", align_corners=False)[0, :, :, 0]
    ours = (torch.from_numpy(bilinear_matrix(out_size, in_size)).float() @ x[:, :, 0].T).T
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=5e-5)  # PyTorch maps coordinates in float32


@pytest.mark.parametrize("k,grid,padded,valid,orig", [
    (10, (40, 40), (640, 640), (640, 640), (192, 192)),
    (3, (40, 54), (640, 864), (640, 852), (160, 213)),
    (171, (8, 6), (128, 96), (121, 90), (300, 211)),
    (1, (4, 4), (64, 64), (64, 50), (64, 50)),
    (7, (16, 12), (256, 192), (250, 190), (6, 5)),  # output smaller than the grid: wide row taps
])
def test_semantic_inference_matches_torch(k, grid, padded, valid, orig):
    rng = np.random.default_rng(k)
    logits = rng.normal(0, 5, (20, k + 1)).astype(np.float32)
    masks = rng.normal(0, 8, (20, *grid)).astype(np.float32)
    ref = torch_semantic_inference(torch.from_numpy(logits), torch.from_numpy(masks), padded, valid, orig).numpy()
    labels, scores = semantic_inference(logits, masks, padded, valid, orig, return_scores=True, block_elems=5000)
    np.testing.assert_allclose(scores, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    assert labels.dtype == np.int32 and labels.shape == orig
    # scores within the bound above name the same class wherever PyTorch's two best are not a near-tie
    assert label_agreement(labels, ref.argmax(0), ref).agreement == 1.0
