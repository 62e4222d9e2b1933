import numpy as np
import pytest
from sanrt.runtime.preprocess import pad_batch, padded_size, prepare, resized_shape


@pytest.mark.parametrize("hw,expected", [
    ((192, 192), (640, 640)),
    ((160, 213), (640, 852)),  # the chelsea fixture
    ((480, 640), (640, 853)),
    ((100, 1000), (256, 2560)),  # long side capped at 2560
    ((640, 640), (640, 640)),
])
def test_resized_shape_follows_detectron2(hw, expected):
    assert resized_shape(*hw) == expected


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
