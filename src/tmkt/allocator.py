"""Host allocator setting: reuse freed tensor memory instead of re-faulting it (training).

glibc serves large blocks (above a dynamic threshold of at most 32 MiB) with a fresh `mmap` and
hands a large free heap top back to the OS, so a CPU training step page-faults its big
activations again every step (measured: ~40,000 faults and ~120 ms of system time per two-stream
cnn_small step, docs/benchmarks.md). `cache` turns both off with `mallopt` (M_MMAP_MAX = 0,
M_TRIM_THRESHOLD = -1, as mallopt(3) documents): freed blocks stay in the process and are
reused, as CUDA's caching allocator does for device memory; resident memory stays at its high-
water mark. `system` leaves the C library's behaviour alone. The setting is process-wide;
`tmkt train` applies `train.cpu_allocator` (default cache), and `conv_time="auto"` blocks read
`caching()` (per-step convolutions only pay off while fresh activations are faulted in).
"""

from __future__ import annotations

import ctypes
import platform

CPU_ALLOCATORS = ("cache", "system")

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_applied: str | None = None


def glibc() -> bool:
    """Whether this process runs on glibc (the only C library `cache` knows how to tune)."""
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def set_cpu_allocator(mode: str) -> bool:
    """Apply `mode` ('cache' or 'system') to this process; True if glibc was re-tuned.

    'cache' on a non-glibc platform is a no-op (returns False). Idempotent. 'system' changes
    nothing, so it does not undo an earlier 'cache' in the same process."""
    global _applied
    if mode not in CPU_ALLOCATORS:
        raise ValueError(f"cpu_allocator must be one of {CPU_ALLOCATORS}, got {mode!r}")
    if mode == "system" or not glibc():
        return False
    if _applied == mode:
        return True
    libc = ctypes.CDLL(None)
    ok = libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, -1) == 1
    if ok:
        _applied = mode
    return ok


def caching() -> bool:
    """Whether this process runs with the `cache` setting (applied by `set_cpu_allocator`)."""
    return _applied == "cache"
