"""Reading static pictures from files."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def read_rgb(path: str | Path) -> np.ndarray:
    """A picture file as (H, W, 3) uint8 RGB (greyscale, palette and CMYK converted by Pillow;
    Pillow's errors, e.g. a truncated file, propagate)."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))
