"""Image reading: formats converted, bad files refused with one clear line."""
import numpy as np
import pytest
from PIL import Image
from sanrt.runtime.errors import ImageError
from sanrt.runtime.images import expand_image_args, load_image, to_rgb_u8

RGB = (np.arange(24 * 32 * 3) % 251).reshape(24, 32, 3).astype(np.uint8)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "LA", "CMYK", "I;16", "1"])
def test_modes_are_converted_to_rgb(tmp_path, mode):
    img = Image.fromarray(RGB)
    if mode == "I;16":
        img = Image.fromarray((RGB[:, :, 0].astype(np.uint16) * 257))
    else:
        img = img.convert(mode)
    path = tmp_path / ("x.tif" if mode == "CMYK" else "x.png")
    img.save(path)
    out = load_image(path)
    assert out.dtype == np.uint8 and out.shape == (24, 32, 3)
    if mode == "I;16":  # 16-bit scaled to 8-bit, not clipped
        np.testing.assert_array_equal(out[:, :, 0], RGB[:, :, 0])


def test_exif_orientation_applied(tmp_path):
    img = Image.fromarray(RGB)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90
    img.save(tmp_path / "r.jpg", exif=exif)
    assert load_image(tmp_path / "r.jpg").shape == (32, 24, 3)


def test_bad_files(tmp_path):
    with pytest.raises(ImageError, match="image not found"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ImageError, match="not an image"):
        load_image(tmp_path / "notes.txt")
    Image.fromarray(RGB).save(tmp_path / "ok.png")
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image(tmp_path / "cut.png")


def test_arrays():
    assert to_rgb_u8(RGB[:, :, 0]).shape == (24, 32, 3)
    assert to_rgb_u8(np.ones((4, 4, 3), np.float32)).max() == 255
    with pytest.raises(ImageError, match="expected an HxW"):
        to_rgb_u8(np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(ImageError, match="unsupported pixel type"):
        to_rgb_u8(np.zeros((4, 4, 3), np.int64))
    with pytest.raises(ImageError, match=r"\[0, 1\]"):
        to_rgb_u8(np.full((4, 4, 3), 7.0))


def test_expand_image_args(tmp_path):
    for n in ("b.png", "a.jpg"):
        Image.fromarray(RGB).save(tmp_path / n)
    (tmp_path / "readme.txt").write_text("x")
    assert [p.name for p in expand_image_args([str(tmp_path)])] == ["a.jpg", "b.png"]
    assert [p.name for p in expand_image_args([str(tmp_path / "*.png")])] == ["b.png"]
    # each image once, where it was first named; a file named by itself is taken whatever its suffix
    assert [p.name for p in expand_image_args([str(tmp_path / "b.png"), str(tmp_path), str(tmp_path / "readme.txt"),
                                               str(tmp_path / "*.jpg")])] == ["b.png", "a.jpg", "readme.txt"]
    with pytest.raises(ImageError, match="no files match"):
        expand_image_args([str(tmp_path / "*.gif")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError, match="no images in folder"):
        expand_image_args([str(tmp_path / "empty")])


# EXIF orientation -> the array the viewer shows, written out in numpy (not through PIL's own table)
ORIENTED = {1: lambda a: a, 2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
            5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, -1), 7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
            8: lambda a: np.rot90(a, 1)}


@pytest.mark.parametrize("orientation", sorted(ORIENTED))
def test_every_exif_orientation(tmp_path, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(RGB).save(tmp_path / "o.png", exif=exif)  # lossless, so pixels compare exactly
    np.testing.assert_array_equal(load_image(tmp_path / "o.png"), ORIENTED[orientation](RGB))


def test_rgba_arrays_drop_alpha_and_keep_colour():
    rgba = np.concatenate([RGB, np.full(RGB.shape[:2] + (1,), 7, np.uint8)], axis=2)
    np.testing.assert_array_equal(to_rgb_u8(rgba), RGB)
    np.testing.assert_array_equal(to_rgb_u8(rgba.astype(np.uint16) * 257), RGB)
    gray = to_rgb_u8(RGB[:, :, :1])
    assert gray.shape == RGB.shape and (gray == RGB[:, :, :1]).all()
