"""Many `default_rng(entropy).integers(n)` draws at once, bit-identical to numpy's.

The class pairing draws one picture per sample with `np.random.default_rng([seed, epoch, i, 7])`
(reproducible with any number of workers). Building a Generator costs ~20-50 µs, more than
reading a cached sample, so batches compute the same draws here: numpy's `SeedSequence`
(pool of 4 uint32 words, hashmix/mix, generate_state) vectorised over the batch, then `PCG64`'s
seeding and 128-bit LCG step, its XSL-RR output, `next_uint32`'s buffering of the high half, and
Lemire's bounded rejection for `integers(n)` with n < 2**32, in Python integers per sample.
`draw_many` returns None where it does not apply; callers check one draw against numpy (see
`PairedDataset.__getitems__`) and fall back if a numpy release ever changes the stream.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_INIT_A, _MULT_A = 0x43B0D7E5, 0x931E8875
_INIT_B, _MULT_B = 0x8B51F9DD, 0x58F38DED
_MIX_L, _MIX_R = 0xCA01F9DD, 0x4973F715
_POOL = 4
_M32 = (1 << 32) - 1
_M64 = (1 << 64) - 1
_M128 = (1 << 128) - 1
_PCG_MULT = (0x2360ED051FC65DA4 << 64) | 0x4385DF649FCCF645


def _hash_constants(n: int, init: int, mult: int) -> list[tuple[np.uint32, np.uint32]]:
    """(constant before, constant after `*= mult`) of n successive hash calls."""
    out, h = [], init
    for _ in range(n):
        nxt = (h * mult) & _M32
        out.append((np.uint32(h), np.uint32(nxt)))
        h = nxt
    return out


_HASH_A = _hash_constants(_POOL * _POOL, _INIT_A, _MULT_A)
_HASH_B = _hash_constants(2 * 4, _INIT_B, _MULT_B)
_SHIFT = np.uint32(16)


def seed_words(entropy: np.ndarray) -> np.ndarray:
    """`SeedSequence(row).generate_state(8)` for every row of (B, 4) entropy below 2**32."""
    e = np.asarray(entropy, dtype=np.uint32)
    calls = iter(_HASH_A)

    def hashmix(v: np.ndarray) -> np.ndarray:
        before, after = next(calls)
        v = (v ^ before) * after
        return v ^ (v >> _SHIFT)

    def mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        r = np.uint32(_MIX_L) * x - np.uint32(_MIX_R) * y
        return r ^ (r >> _SHIFT)

    mixer = [hashmix(e[:, i]) for i in range(_POOL)]
    for src in range(_POOL):
        for dst in range(_POOL):
            if src != dst:
                mixer[dst] = mix(mixer[dst], hashmix(mixer[src]))
    words = []
    for w, (before, after) in enumerate(_HASH_B):
        v = (mixer[w % _POOL] ^ before) * after
        words.append(v ^ (v >> _SHIFT))
    return np.stack(words, axis=1)


def _bounded(s_hi: int, s_lo: int, i_hi: int, i_lo: int, n: int) -> int:
    """`Generator(PCG64 seeded with these words).integers(n)` for 1 < n < 2**32."""
    inc = (((i_hi << 64) | i_lo) << 1 | 1) & _M128
    state = (inc + ((s_hi << 64) | s_lo)) & _M128  # srandom: step from 0, add the seed
    state = (state * _PCG_MULT + inc) & _M128  # srandom's second step
    spare = -1

    def next32() -> int:
        nonlocal state, spare
        if spare >= 0:
            v, spare = spare, -1
            return v
        state = (state * _PCG_MULT + inc) & _M128
        x = ((state >> 64) ^ state) & _M64
        rot = state >> 122
        x = ((x >> rot) | (x << ((-rot) & 63))) & _M64
        spare = x >> 32
        return x & _M32

    m = next32() * n
    left = m & _M32
    if left < n:
        threshold = (_M32 - (n - 1)) % n
        while left < threshold:
            m = next32() * n
            left = m & _M32
    return m >> 32


def draw_many(entropy: Sequence[Sequence[int]], n_choices: Sequence[int]) -> list[int] | None:
    """`[int(default_rng(e).integers(n)) for e, n in zip(entropy, n_choices)]`, batched.

    Each entropy row must hold exactly 4 integers in [0, 2**32) and each n must lie in
    [1, 2**32); otherwise None (the caller draws with numpy).
    """
    ns = [int(n) for n in n_choices]
    if len(ns) == 0 and len(entropy) == 0:
        return []
    try:
        ent = np.asarray(entropy, dtype=np.int64)
    except (OverflowError, TypeError, ValueError):  # huge or ragged entropy
        return None
    if ent.ndim != 2 or ent.shape[1] != _POOL or len(ns) != len(ent):
        return None
    if ent.min() < 0 or ent.max() > _M32 or min(ns) < 1 or max(ns) > _M32:
        return None
    w = seed_words(ent.astype(np.uint32)).astype(np.uint64)
    seeds = (w[:, 0::2] | (w[:, 1::2] << np.uint64(32))).tolist()
    return [0 if n == 1 else _bounded(*s, n) for s, n in zip(seeds, ns, strict=True)]
