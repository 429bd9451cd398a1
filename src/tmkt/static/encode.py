"""Static image -> (T, 2, H, W) sequence: resize to the event resolution, keep HSV V (or gray).

[He] resize, take V = max(R, G, B) in [0, 1], copy it to both polarity channels, repeat over T.
[ours] option ``mode="gray"``: ITU-R 601 luma (0.299 R + 0.587 G + 0.114 B) instead of V.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

MODES = ("hsv_v", "gray")
RESAMPLE = {
    "bilinear": Image.Resampling.BILINEAR,
    "box": Image.Resampling.BOX,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "nearest": Image.Resampling.NEAREST,
}
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def image_to_float(image: np.ndarray) -> np.ndarray:
    """Check an HxW or HxWxC (C in 1, 3, 4) uint8 or float image; return float32 HxWxC in [0, 1].

    A fourth (alpha) channel is dropped; a float image must already lie in [0, 1].
    """
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(
            f"image must be HxW or HxWxC with C in (1, 3, 4); got shape {np.shape(image)}"
        )
    arr = arr[:, :, :3]
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / np.float32(255.0)
    if arr.dtype.kind == "f":
        out = arr.astype(np.float32)
        if not np.all(np.isfinite(out)):
            raise ValueError("a float image must not hold NaN or inf values")
        if out.min() < 0.0 or out.max() > 1.0:
            raise ValueError(
                f"a float image must lie in [0, 1]; got range [{out.min()}, {out.max()}]"
            )
        return out
    raise ValueError(f"image dtype must be uint8 or float; got {arr.dtype}")


def resize_channels(img: np.ndarray, size: tuple[int, int], resample: str) -> np.ndarray:
    """Resize float32 HxWxC to (H_out, W_out) channel by channel with Pillow, kept in [0, 1]."""
    h_out, w_out = size
    if img.shape[:2] == (h_out, w_out):
        return img
    if resample not in RESAMPLE:
        raise ValueError(f"resample must be one of {tuple(RESAMPLE)}, got {resample!r}")
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(img[:, :, c], dtype=np.float32)).resize(
                (w_out, h_out), RESAMPLE[resample]
            )
        )
        for c in range(img.shape[2])
    ]
    return np.clip(np.stack(channels, axis=2), 0.0, 1.0)


def encode_static(
    image: np.ndarray,
    T: int,
    size: int | tuple[int, int],
    mode: str = "hsv_v",
    *,
    resample: str = "bilinear",
) -> np.ndarray:
    """Encode one image as float32 (T, 2, H, W); ``size`` is (H, W) or an int (square).

    The image is resized first (Pillow, ``resample`` filter; Pillow's bilinear averages over
    the source area when shrinking), then reduced to one channel (V or gray) as in He et al.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if int(T) != T or T < 1:
        raise ValueError(f"T must be a positive integer, got {T!r}")
    if isinstance(size, int | np.integer):
        size = (int(size), int(size))
    h_out, w_out = (int(v) for v in size)
    if h_out < 1 or w_out < 1:
        raise ValueError(f"size must be positive (H, W), got {size}")
    img = resize_channels(image_to_float(image), (h_out, w_out), resample)
    if img.shape[2] == 1:
        plane = img[:, :, 0]
    elif mode == "hsv_v":
        plane = img.max(axis=2)
    else:
        plane = np.clip(img @ LUMA, 0.0, 1.0)
    plane = plane.astype(np.float32)
    return np.ascontiguousarray(np.broadcast_to(plane, (int(T), 2, h_out, w_out)))
