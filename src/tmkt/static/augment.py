"""Augmentations of static pictures (HxW or HxWxC arrays) before encoding, seeded by a Generator.

The encoder resizes afterwards, so a random *resized* crop is just a random crop here.
"""

from __future__ import annotations

import math

import numpy as np

MODES = ("crop_pad", "resized_crop", "none")


def _check_image(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.ndim not in (2, 3) or img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"image must be HxW or HxWxC; got shape {img.shape}")
    return img


def hflip_image(img: np.ndarray) -> np.ndarray:
    """Mirror left-right."""
    return np.ascontiguousarray(_check_image(img)[:, ::-1])


def crop_pad_image(img: np.ndarray, padding: int, rng: np.random.Generator) -> np.ndarray:
    """Zero-pad by ``padding`` on every side, then crop the original size at a random offset."""
    img = _check_image(img)
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    if padding == 0:
        return img.copy()
    h, w = img.shape[:2]
    widths = [(padding, padding), (padding, padding)] + [(0, 0)] * (img.ndim - 2)
    padded = np.pad(img, widths)
    top, left = rng.integers(0, 2 * padding + 1, size=2)
    return padded[top : top + h, left : left + w].copy()


def random_resized_crop_box(
    h: int,
    w: int,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.5, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a crop with random area fraction and aspect ratio.

    Same procedure as torchvision's RandomResizedCrop (10 tries, then the central crop).
    """
    area = h * w
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        cw = int(round(math.sqrt(target * aspect)))
        ch = int(round(math.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            top = int(rng.integers(0, h - ch + 1))
            left = int(rng.integers(0, w - cw + 1))
            return top, left, ch, cw
    in_ratio = w / h
    if in_ratio < ratio[0]:
        cw, ch = w, int(round(w / ratio[0]))
    elif in_ratio > ratio[1]:
        ch, cw = h, int(round(h * ratio[1]))
    else:
        cw, ch = w, h
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def augment_image(
    img: np.ndarray,
    rng: np.random.Generator,
    *,
    mode: str = "crop_pad",
    padding_frac: float = 1 / 12,
    scale: tuple[float, float] = (0.5, 1.0),
    flip_p: float = 0.5,
) -> np.ndarray:
    """Random crop (``crop_pad``: pad by H * padding_frac; ``resized_crop``) and flip.

    [ours] default ``crop_pad`` with the events' padding fraction and flip p = 0.5, so static
    and event samples see the same kind of geometric jitter.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    img = _check_image(img)
    if mode == "crop_pad":
        img = crop_pad_image(img, int(img.shape[0] * padding_frac), rng)
    elif mode == "resized_crop":
        top, left, ch, cw = random_resized_crop_box(img.shape[0], img.shape[1], rng, scale)
        img = img[top : top + ch, left : left + cw].copy()
    if rng.random() < flip_p:
        img = hflip_image(img)
    return img
