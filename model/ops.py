"""Export-friendly building blocks shared by the SAN graph.

Every function here keeps to ops that trace into plain ONNX (MatMul, Softmax, Resize, Gather,
ReduceMax, LayerNormalization) with no data-dependent Python branches, so one graph serves every
input size.
"""
from __future__ import annotations

import math

import numpy as np

import torch
import torch.nn.functional as F

# Finite stand-in for -inf in additive attention masks: exp(-1e4) underflows to exactly 0 in FP32,
# and the value stays representable (and overflow-free when added) in FP16.
MASK_NEG = -1.0e4


def attention(
    x: torch.Tensor,
    in_w: torch.Tensor,
    in_b: torch.Tensor,
    out_w: torch.Tensor,
    out_b: torch.Tensor,
    num_heads: int,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Multi-head self-attention as MatMul + Softmax, with an optional additive bias.

    x: [B, N, C]; bias broadcastable to [B, heads, N, N]. Weights in nn.MultiheadAttention layout.
    """
    b, n, c = x.shape
    head_dim = c // num_heads
    qkv = F.linear(x, in_w, in_b).reshape(b, n, 3, num_heads, head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    scores = torch.matmul(q * (head_dim ** -0.5), k.transpose(-2, -1))
    if bias is not None:
        scores = scores + bias
    out = torch.matmul(scores.softmax(dim=-1), v)
    out = out.transpose(1, 2).reshape(b, n, c)
    return F.linear(out, out_w, out_b)


def layer_norm_channels_first(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """LayerNorm over dim 1 of [B, C, H, W] (SAN's hand-written one), via F.layer_norm."""
    # normalized_shape must be a Python int for export; the parameters' size is fixed
    x = F.layer_norm(x.permute(0, 2, 3, 1), (weight.numel(),), weight, bias, eps)
    return x.permute(0, 3, 1, 2)


def resize_grid_embed(grid: torch.Tensor, grid_hw: tuple[int, int], size: tuple) -> torch.Tensor:
    """Resize a [G, C] positional-embedding grid to `size` = (h, w) tokens, bicubic, no antialias.

    Returns [h*w, C]. The official code skips the resize when the grid already has the target size;
    bicubic at scale 1 samples exactly on the grid points, so resizing unconditionally is the same
    and keeps the graph free of shape branches.
    """
    c = grid.shape[-1]
    g = grid.reshape(1, grid_hw[0], grid_hw[1], c).permute(0, 3, 1, 2)
    g = F.interpolate(g, size=size, mode="bicubic", align_corners=False)
    return g.flatten(2).transpose(1, 2)[0]


def adaptive_window(in_size: int, out_size: int) -> int:
    """Longest window adaptive pooling uses between these sizes (PyTorch's start/end rule)."""
    return max(
        -(-((i + 1) * in_size) // out_size) - (i * in_size) // out_size for i in range(out_size)
    )


def _adaptive_max_pool_axis(x: torch.Tensor, dim: int, out_size, window: int) -> torch.Tensor:
    """adaptive_max_pool along one axis, exact for any in/out ratio (also non-integer ones).

    PyTorch's window i is [floor(i*In/Out), ceil((i+1)*In/Out)); every window is gathered at a fixed
    width `window`, indices past its end clamped to its last element (repeats do not change a max).
    """
    in_size = x.shape[dim]
    i = torch.arange(out_size, device=x.device)
    start = torch.div(i * in_size, out_size, rounding_mode="floor")
    end = torch.div((i + 1) * in_size + out_size - 1, out_size, rounding_mode="floor")
    idx = start[:, None] + torch.arange(window, device=x.device)[None, :]
    idx = torch.minimum(idx, (end - 1)[:, None])
    g = torch.index_select(x, dim, idx.reshape(-1))
    shape = list(x.shape)
    shape[dim : dim + 1] = [out_size, window]
    return g.reshape(shape).amax(dim=dim + 1)


class BiasPool(torch.nn.Module):
    """Max-pools the [SLS] attention bias from the side-adapter grid to the CLIP grid.

    Equals F.adaptive_max_pool2d. The strategy is fixed at construction from the model geometry,
    not from the data: a plain MaxPool when the side grid is an exact multiple of the CLIP grid at
    every supported size (ViT-B/16: 2x), otherwise separable gathers with a fixed window
    (ViT-L/14: 40 -> 32).
    """

    def __init__(self, side_grid_of, clip_grid_of, max_pixels: int, step: int):
        super().__init__()
        pairs = {(side_grid_of(s), clip_grid_of(s)) for s in range(step, max_pixels + 1, step)}
        pairs = {(a, b) for a, b in pairs if b > 0}
        ratios = {a / b for a, b in pairs}
        if len(ratios) == 1 and float(next(iter(ratios))).is_integer():
            self.kernel = int(next(iter(ratios)))
            self.window = 0
        else:
            self.kernel = 0
            self.window = max(adaptive_window(a, b) for a, b in pairs)

    def forward(self, x: torch.Tensor, out_hw: tuple) -> torch.Tensor:
        """x: [N, C, H, W] -> [N, C, out_h, out_w]."""
        if self.kernel:
            return F.max_pool2d(x, self.kernel, self.kernel)
        x = _adaptive_max_pool_axis(x, 2, out_hw[0], self.window)
        return _adaptive_max_pool_axis(x, 3, out_hw[1], self.window)


def clip_side(pixels: int, scale: float) -> int:
    """CLIP's input side for a padded side, as F.interpolate(scale_factor=scale) computes it: the
    floor of a double-precision product (ViT-L: 1440 * 0.7 -> 1007, not 1008)."""
    return int(math.floor(float(pixels) * scale))


def clip_grid_size(pixels: int, scale: float, patch: int) -> int:
    """Tokens along one side of CLIP's grid for a padded side of `pixels`."""
    return clip_side(pixels, scale) // patch


class ClipResize(torch.nn.Module):
    """The official CLIP input: F.interpolate(images, scale_factor=scale, bilinear, align_corners=False):
    output side floor(side * scale) in double precision, source coordinate (dst + 0.5) / scale - 0.5.

    Where the scale is a power of two (ViT-B: 0.5), every framework's product is exact and ONNX's
    Resize computes just that. Otherwise (ViT-L: 0.7) ONNX Runtime's and OpenVINO's Resize round some
    output sides up (1440 -> 1008 instead of 1007), so the resize is done as two interpolation
    matrices built in the graph, their sizes read from a table of the official output side of every
    side up to max_pixels (not only the padded ones: a direct caller of the graph may send any).
    """

    def __init__(self, scale: float, max_pixels: int):
        super().__init__()
        self.scale = scale
        self.exact = 0 < scale <= 1 and math.log2(scale).is_integer()
        sides = [clip_side(s, scale) for s in range(0, max_pixels + 1)]
        self.register_buffer("out_sides", torch.tensor(sides, dtype=torch.int64), persistent=False)
        self.max_pixels = max_pixels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.exact:
            return F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        h, w = x.shape[-2:]
        return torch.matmul(torch.matmul(self._matrix(h, x), x), self._matrix(w, x).transpose(0, 1))

    def _matrix(self, size, x: torch.Tensor) -> torch.Tensor:
        """[out, size] weights of PyTorch's bilinear kernel with a given scale factor."""
        out = self.out_sides[size]
        dst = torch.arange(out, device=x.device).to(torch.float32)
        # PyTorch: src = (1 / scale) * (dst + 0.5) - 0.5, clamped at 0, in float32
        src = torch.clamp((dst + 0.5) * float(np.float32(1.0 / self.scale)) - 0.5, min=0.0)
        i0 = src.floor()
        l1 = src - i0
        i0 = i0.to(torch.int64)
        i1 = torch.clamp(i0 + 1, max=size - 1)
        cols = torch.arange(size, device=x.device)[None, :]
        m = (cols == i0[:, None]).to(x.dtype) * (1.0 - l1)[:, None] + (cols == i1[:, None]).to(x.dtype) * l1[:, None]
        return m.to(x.dtype)


def _explicit_layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """LayerNorm written out as ONNX defines it (mean, centred square, mean, sqrt, divide), so a
    mixed-precision graph can keep exactly its statistics in FP32."""
    dims = tuple(range(-len(normalized_shape), 0))
    mean = x.mean(dim=dims, keepdim=True)
    centred = x - mean
    var = centred.pow(2).mean(dim=dims, keepdim=True)
    y = centred / torch.sqrt(var + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


class explicit_layer_norm:
    """Context: every F.layer_norm (open_clip's, nn.LayerNorm's, ours) traces as explicit ops."""

    def __enter__(self):
        self._orig = F.layer_norm
        F.layer_norm = _explicit_layer_norm
        return self

    def __exit__(self, *exc):
        F.layer_norm = self._orig
        return False
