"""Static encoder: known pixel values, resizing, MNIST pictures, refused inputs."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from tmkt.static.encode import encode_static

RGB = (10, 200, 30)


def _solid(h: int, w: int, rgb=RGB) -> np.ndarray:
    img = np.zeros((h, w, 3), dtype=np.uint8)
    img[:] = rgb
    return img


def test_hsv_v_is_max_channel_copied_over_t_and_polarity() -> None:
    img = np.array([[[10, 200, 30], [255, 0, 0]], [[0, 0, 0], [7, 8, 9]]], dtype=np.uint8)
    x = encode_static(img, 4, (2, 2))
    assert x.shape == (4, 2, 2, 2) and x.dtype == np.float32
    expected = np.array([[200, 255], [0, 9]], dtype=np.float32) / 255
    for t in range(4):
        for c in range(2):
            np.testing.assert_array_equal(x[t, c], expected)


def test_gray_mode_uses_luma() -> None:
    x = encode_static(_solid(3, 3), 2, 3, mode="gray")
    luma = (0.299 * 10 + 0.587 * 200 + 0.114 * 30) / 255
    np.testing.assert_allclose(x, luma, rtol=1e-6)


def test_uint8_and_float_agree_and_alpha_dropped() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(9, 11, 3), dtype=np.uint8)
    a = encode_static(img, 2, (5, 6))
    b = encode_static(img.astype(np.float64) / 255, 2, (5, 6))
    np.testing.assert_allclose(a, b, atol=1e-6)
    rgba = np.concatenate([img, np.full((9, 11, 1), 255, np.uint8)], axis=2)
    np.testing.assert_array_equal(encode_static(rgba, 2, (5, 6)), a)


def test_gray_inputs_hw_and_hw1() -> None:
    img = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    x = encode_static(img, 1, (3, 4))
    np.testing.assert_array_equal(x[0, 0], img / np.float32(255))
    np.testing.assert_array_equal(encode_static(img[:, :, None], 1, (3, 4)), x)
    np.testing.assert_array_equal(encode_static(img, 1, (3, 4), mode="gray"), x)


def test_resize_box_is_block_mean_and_constant_stays_constant() -> None:
    img = np.array([[0, 40, 80, 120], [40, 80, 120, 160]], dtype=np.uint8)
    x = encode_static(img, 1, (1, 2), resample="box")
    np.testing.assert_allclose(x[0, 0, 0], [40 / 255, 120 / 255], rtol=1e-6)
    solid = encode_static(_solid(28, 28), 3, 48)
    np.testing.assert_allclose(solid, 200 / 255, rtol=1e-6)
    small = encode_static(_solid(100, 60), 3, (10, 6))
    assert small.shape == (3, 2, 10, 6)
    np.testing.assert_allclose(small, 200 / 255, rtol=1e-6)


def test_resize_happens_before_v() -> None:
    # left half pure red, right half pure green: V per pixel is 1, mean-resized V stays 1,
    # but V of the mean-resized picture (resize first, as He et al.) is 0.5.
    img = np.zeros((2, 2, 3), dtype=np.uint8)
    img[:, 0, 0] = 255
    img[:, 1, 1] = 255
    x = encode_static(img, 1, (1, 1), resample="box")
    np.testing.assert_allclose(x, 0.5, rtol=1e-6)


def test_real_mnist_picture(shared_data: Path) -> None:
    with gzip.open(shared_data / "MNIST" / "raw" / "train-images-idx3-ubyte.gz", "rb") as f:
        head = np.frombuffer(f.read(16 + 28 * 28), dtype=np.uint8)
    img = head[16:].reshape(28, 28)
    x = encode_static(img, 10, (28, 28))
    np.testing.assert_array_equal(x[3, 1], img / np.float32(255))
    y = encode_static(img, 10, 34)
    assert y.shape == (10, 2, 34, 34) and 0.0 <= y.min() and y.max() <= 1.0
    assert abs(y.mean() - x.mean()) < 0.02  # resizing keeps the mean intensity


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((4, 4, 2), np.uint8), "HxW or HxWxC"),
        (np.zeros((4, 4, 5), np.uint8), "HxW or HxWxC"),
        (np.zeros((2, 4, 4, 3), np.uint8), "HxW or HxWxC"),
        (np.zeros(5, np.uint8), "HxW or HxWxC"),
        (np.zeros((4, 4), np.int64), "dtype must be uint8 or float"),
        (np.zeros((4, 4), bool), "dtype must be uint8 or float"),
        (np.full((4, 4), 2.0), r"in \[0, 1\]"),
        (np.full((4, 4), np.nan), "NaN"),
    ],
)
def test_bad_images_refused(bad: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode_static(bad, 2, 4)


def test_bad_arguments_refused() -> None:
    img = _solid(4, 4)
    with pytest.raises(ValueError, match="mode must be one of"):
        encode_static(img, 2, 4, mode="hsv")
    with pytest.raises(ValueError, match="T must be a positive integer"):
        encode_static(img, 0, 4)
    with pytest.raises(ValueError, match="size must be positive"):
        encode_static(img, 2, (0, 4))
    with pytest.raises(ValueError, match="resample must be one of"):
        encode_static(img, 2, 3, resample="area")
