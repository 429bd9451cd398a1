"""Augmentations of event frames (T, 2, H, W), one draw per sample shared by all T frames.

Defaults follow BrainCog's CIFAR10-DVS recipe (He et al.'s code base): random crop with zero
padding of H // 12 pixels, horizontal flip with p = 0.5, rotation uniform in +-15 degrees.
Rotation here scatters each source pixel to its nearest rotated target (sums, never samples),
so counts are kept except for what leaves the frame.
"""

from __future__ import annotations

import numpy as np


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim < 2:
        raise ValueError(f"frames must be (..., H, W); got shape {frames.shape}")
    return frames


def hflip(frames: np.ndarray) -> np.ndarray:
    """Mirror left-right (the W axis)."""
    return np.ascontiguousarray(_check_frames(frames)[..., ::-1])


def translate(frames: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Shift content by (dy, dx) pixels, filling with zeros (what leaves the frame is lost)."""
    frames = _check_frames(frames)
    h, w = frames.shape[-2:]
    out = np.zeros_like(frames)
    if abs(dy) >= h or abs(dx) >= w:
        return out
    src_y = slice(max(0, -dy), h - max(0, dy))
    dst_y = slice(max(0, dy), h - max(0, -dy))
    src_x = slice(max(0, -dx), w - max(0, dx))
    dst_x = slice(max(0, dx), w - max(0, -dx))
    out[..., dst_y, dst_x] = frames[..., src_y, src_x]
    return out


def roll(frames: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Shift content by (dy, dx) pixels circularly (NDA-style roll; nothing is lost)."""
    return np.roll(_check_frames(frames), shift=(dy, dx), axis=(-2, -1))


def rotate(frames: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate about the frame centre (counter-clockwise on screen) by scattering source pixels.

    Each source pixel moves to the nearest pixel of its rotated position and adds there, so
    the total is conserved for content that stays inside the frame.
    """
    frames = _check_frames(frames)
    if degrees == 0:
        return frames.copy()
    h, w = frames.shape[-2:]
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    theta = np.deg2rad(degrees)
    cos, sin = np.cos(theta), np.sin(theta)
    dy, dx = yy - cy, xx - cx
    ty = np.rint(cy + cos * dy - sin * dx).astype(np.int64)
    tx = np.rint(cx + sin * dy + cos * dx).astype(np.int64)
    inside = (ty >= 0) & (ty < h) & (tx >= 0) & (tx < w)
    src = np.flatnonzero(inside)
    dst = (ty * w + tx).reshape(-1)[src]
    flat = frames.reshape(-1, h * w)
    out = np.zeros((h * w, flat.shape[0]), dtype=frames.dtype)
    np.add.at(out, dst, flat[:, src].T)
    return np.ascontiguousarray(out.T).reshape(frames.shape)


def random_crop_pad(frames: np.ndarray, padding: int, rng: np.random.Generator) -> np.ndarray:
    """Zero-pad by ``padding`` on every side, crop back to (H, W) at a random offset."""
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    if padding == 0:
        return np.array(frames, copy=True)
    dy, dx = rng.integers(-padding, padding + 1, size=2)
    return translate(frames, int(dy), int(dx))


def augment_frames(
    frames: np.ndarray,
    rng: np.random.Generator,
    *,
    padding: int | None = None,
    flip_p: float = 0.5,
    max_rotation: float = 15.0,
    roll_pixels: int = 0,
) -> np.ndarray:
    """Random crop with padding, flip, rotation (and optional roll) of one (T, 2, H, W) sample.

    ``padding=None`` means H // 12 (4 pixels at 48x48). Every random draw is made once per
    sample from ``rng``, so all T frames get the same transformation.
    """
    frames = _check_frames(frames)
    h = frames.shape[-2]
    pad = h // 12 if padding is None else int(padding)
    out = random_crop_pad(frames, pad, rng)
    if rng.random() < flip_p:
        out = hflip(out)
    if max_rotation > 0:
        out = rotate(out, float(rng.uniform(-max_rotation, max_rotation)))
    if roll_pixels > 0:
        dy, dx = rng.integers(-roll_pixels, roll_pixels + 1, size=2)
        out = roll(out, int(dy), int(dx))
    return out
