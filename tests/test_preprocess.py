import numpy as np
import pytest
from sanrt.runtime.preprocess import pad_batch, padded_size, prepare, resized_shape


@pytest.mark.parametrize("hw,expected", [
    ((192, 192), (640, 640)),
    ((160, 213), (640, 852)),  # the chelsea fixture
    ((480, 640), (640, 853)),
    ((100, 1000), (256, 2560)),  # long side capped at 2560
    ((640, 640), (640, 640)),
    ((1080, 1920), (640, 1138)),  # 1137.78: rounds to nearest, not down
    ((1920, 1080), (1138, 640)),
    ((300, 451), (640, 962)),  # 962.13
    ((7, 1000), (18, 2560)),  # capped: the short side 17.92 rounds up too
])
def test_resized_shape_follows_detectron2(hw, expected):
    assert resized_shape(*hw) == expected


def _detectron2_output_shape(h, w, short=640, max_size=2560):
    """detectron2's ResizeShortestEdge.get_output_shape, as its source writes it."""
    scale = short * 1.0 / min(h, w)
    newh, neww = (short, scale * w) if h < w else (scale * h, short)
    if max(newh, neww) > max_size:
        scale = max_size * 1.0 / max(newh, neww)
        newh, neww = newh * scale, neww * scale
    return int(newh + 0.5), int(neww + 0.5)


def test_resized_shape_over_a_sweep_of_sizes():
    """Every size from 1 to 3000 along one side against a few others: rounding to nearest included."""
    for h in range(1, 3001, 7):
        for w in (1, 33, 480, 1080, 1921, 4000):
            assert resized_shape(h, w) == _detectron2_output_shape(h, w), (h, w)


def test_prepare_matches_official_model_input(tiny_dev):
    for npz in sorted(tiny_dev.glob("*.npz")):
        ref = np.load(npz)
        np.testing.assert_array_equal(prepare(ref["orig_image_hwc_u8"]), ref["model_input_chw_u8"])


def test_pad_batch_zero_pads_bottom_right():
    a = np.full((3, 40, 50), 7, np.uint8)
    b = np.full((3, 64, 33), 9, np.uint8)
    batch, sizes = pad_batch([a, b], 32)
    assert batch.shape == (2, 3, 64, 64) and padded_size(40, 50) == (64, 64)
    assert sizes.tolist() == [[40, 50], [64, 33]]
    assert (batch[0, :, :40, :50] == 7).all() and batch[0, :, 40:].sum() == 0 and batch[0, :, :, 50:].sum() == 0
    assert (batch[1, :, :, :33] == 9).all() and batch[1, :, :, 33:].sum() == 0


def test_prepare_refuses_non_rgb():
    with pytest.raises(ValueError, match="RGB uint8"):
        prepare(np.zeros((10, 10), np.uint8))
