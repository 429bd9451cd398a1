"""Augmentations of event frames and static pictures: identities, known moves, seeding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tmkt.events.augment import (
    augment_frames,
    hflip,
    random_crop_pad,
    roll,
    rotate,
    translate,
)
from tmkt.events.frames import events_to_frames
from tmkt.events.io import read_events
from tmkt.static.augment import (
    augment_image,
    crop_pad_image,
    hflip_image,
    random_resized_crop_box,
)
from tmkt.static.encode import encode_static


@pytest.fixture(scope="module")
def frames(shared_data: Path) -> np.ndarray:
    events, sensor = read_events(shared_data / "fixtures" / "sample_nmnist.bin")
    return events_to_frames(events, sensor, 5)


def test_flip_twice_is_identity_and_keeps_counts(frames: np.ndarray) -> None:
    flipped = hflip(frames)
    assert flipped.sum() == frames.sum() == 4325
    np.testing.assert_array_equal(flipped[..., 0], frames[..., -1])
    assert not np.array_equal(flipped, frames)
    np.testing.assert_array_equal(hflip(flipped), frames)


def test_translate_known_shift() -> None:
    a = np.zeros((1, 2, 4, 5), dtype=np.float32)
    a[0, 1, 1, 2] = 3
    a[0, 0, 3, 4] = 1
    b = translate(a, 1, -2)
    assert b[0, 1, 2, 0] == 3 and b.sum() == 3  # the corner pixel left the frame
    np.testing.assert_array_equal(translate(a, 0, 0), a)
    assert not translate(a, 4, 0).any()


def test_crop_pad_zero_is_identity_and_crop_is_a_shift(frames: np.ndarray) -> None:
    rng = np.random.default_rng(3)
    np.testing.assert_array_equal(random_crop_pad(frames, 0, rng), frames)
    for seed in range(5):
        out = random_crop_pad(frames, 2, np.random.default_rng(seed))
        matches = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if np.array_equal(out, translate(frames, dy, dx))
        ]
        assert len(matches) == 1
        assert out.shape == frames.shape and out.sum() <= frames.sum()


def test_roll_round_trip(frames: np.ndarray) -> None:
    rolled = roll(frames, 3, -2)
    assert rolled.sum() == frames.sum()
    assert rolled[0, 1, 3, 0] == frames[0, 1, 0, 2]
    np.testing.assert_array_equal(roll(rolled, -3, 2), frames)


def test_rotate_quarter_turn_is_rot90_and_zero_is_identity(frames: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, size=(3, 2, 7, 7)).astype(np.float32)
    np.testing.assert_array_equal(rotate(a, 90.0), np.rot90(a, k=1, axes=(-2, -1)))
    np.testing.assert_array_equal(rotate(a, -90.0), np.rot90(a, k=-1, axes=(-2, -1)))
    np.testing.assert_array_equal(rotate(frames, 0.0), frames)


def test_rotate_keeps_counts_of_central_content() -> None:
    a = np.zeros((2, 2, 33, 33), dtype=np.float32)
    a[:, :, 10:23, 10:23] = 1.0  # well inside the inscribed circle
    for deg in (-15.0, 7.5, 15.0):
        out = rotate(a, deg)
        assert out.sum() == a.sum()
        assert not np.array_equal(out, a)


def test_augment_same_transform_for_all_t(frames: np.ndarray) -> None:
    same = np.repeat(frames[:1], 6, axis=0)
    for seed in range(4):
        out = augment_frames(same, np.random.default_rng(seed), padding=3)
        for t in range(1, 6):
            np.testing.assert_array_equal(out[t], out[0])


def test_augment_equals_its_steps_and_is_seeded(frames: np.ndarray) -> None:
    out = augment_frames(frames, np.random.default_rng(11), padding=2, roll_pixels=1)
    rng = np.random.default_rng(11)
    dy, dx = rng.integers(-2, 3, size=2)
    manual = translate(frames, int(dy), int(dx))
    if rng.random() < 0.5:
        manual = hflip(manual)
    manual = rotate(manual, float(rng.uniform(-15.0, 15.0)))
    ry, rx = rng.integers(-1, 2, size=2)
    manual = roll(manual, int(ry), int(rx))
    np.testing.assert_array_equal(out, manual)
    again = augment_frames(frames, np.random.default_rng(11), padding=2, roll_pixels=1)
    np.testing.assert_array_equal(out, again)
    outs = {augment_frames(frames, np.random.default_rng(s)).tobytes() for s in range(6)}
    assert len(outs) > 1


def test_augment_all_off_is_identity(frames: np.ndarray) -> None:
    out = augment_frames(frames, np.random.default_rng(0), padding=0, flip_p=0.0, max_rotation=0)
    np.testing.assert_array_equal(out, frames)
    flipped = augment_frames(
        frames, np.random.default_rng(0), padding=0, flip_p=1.0, max_rotation=0
    )
    np.testing.assert_array_equal(flipped, hflip(frames))


def test_frame_augment_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match=r"\(\.\.\., H, W\)"):
        hflip(np.zeros(3))
    with pytest.raises(ValueError, match="padding must be >= 0"):
        random_crop_pad(np.zeros((2, 2)), -1, np.random.default_rng(0))


# --- static pictures ------------------------------------------------------------------------

IMG = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)


def test_static_flip_and_crop_identities() -> None:
    np.testing.assert_array_equal(hflip_image(hflip_image(IMG)), IMG)
    np.testing.assert_array_equal(hflip_image(IMG)[:, 0], IMG[:, -1])
    np.testing.assert_array_equal(crop_pad_image(IMG, 0, np.random.default_rng(0)), IMG)
    out = augment_image(IMG, np.random.default_rng(0), padding_frac=0.0, flip_p=0.0)
    np.testing.assert_array_equal(out, IMG)
    np.testing.assert_array_equal(
        augment_image(IMG, np.random.default_rng(0), mode="none", flip_p=1.0), hflip_image(IMG)
    )


def test_static_crop_pad_is_a_window_of_the_padded_image() -> None:
    padded = np.pad(IMG, [(2, 2), (2, 2), (0, 0)])
    for seed in range(5):
        out = crop_pad_image(IMG, 2, np.random.default_rng(seed))
        assert out.shape == IMG.shape and out.dtype == IMG.dtype
        windows = [
            (i, j)
            for i in range(5)
            for j in range(5)
            if np.array_equal(out, padded[i : i + 6, j : j + 8])
        ]
        assert windows


def test_resized_crop_box_within_bounds_and_scale() -> None:
    for seed in range(50):
        top, left, ch, cw = random_resized_crop_box(60, 80, np.random.default_rng(seed))
        assert 0 <= top and top + ch <= 60 and 0 <= left and left + cw <= 80
        assert 0.5 * 0.8 <= ch * cw / 4800 <= 1.0  # rounding slack on the area fraction
    crop = augment_image(IMG, np.random.default_rng(1), mode="resized_crop", flip_p=0.0)
    x = encode_static(crop, 2, (6, 8))
    assert x.shape == (2, 2, 6, 8)


def test_static_augment_refuses_bad_mode_and_shape() -> None:
    with pytest.raises(ValueError, match="mode must be one of"):
        augment_image(IMG, np.random.default_rng(0), mode="cutmix")
    with pytest.raises(ValueError, match="HxW or HxWxC"):
        augment_image(np.zeros((2, 2, 2, 2)), np.random.default_rng(0))
