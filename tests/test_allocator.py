"""Host allocator setting: 'cache' stops re-faulting freed large blocks (glibc), bad modes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tmkt.allocator import glibc, set_cpu_allocator
from tmkt.train.config import Config, ConfigError

# 64 MiB (16,384 pages) allocated, written and freed 5 times after 12 warm-up rounds: minor page
# faults of the 5 rounds. glibc mmaps such a block afresh each time unless told otherwise; in the
# heap, c10's aligned allocations need a few rounds before a freed hole fits the next request.
_PROBE = """
import resource, sys, torch
from tmkt.allocator import set_cpu_allocator
set_cpu_allocator(sys.argv[1])
def touch():
    x = torch.empty(16 * 1024 * 1024)
    x.fill_(1.0)
    del x
for _ in range(12):
    touch()
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    touch()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
"""


@pytest.mark.skipif(not glibc(), reason="the cache setting tunes glibc's malloc")
def test_cache_mode_reuses_freed_blocks_without_page_faults() -> None:
    def faults(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True,
                             text=True, check=True)
        return int(out.stdout.strip().splitlines()[-1])

    assert faults("system") >= 5 * 16_000  # every round faults its 16,384 pages in again
    assert faults("cache") < 16_000  # the heap's freed block is reused


def test_bad_allocator_mode_is_rejected() -> None:
    with pytest.raises(ValueError, match="cpu_allocator must be one of"):
        set_cpu_allocator("jemalloc")
    assert set_cpu_allocator("system") is False
    with pytest.raises(ConfigError, match="train.cpu_allocator"):
        Config.from_dict({"train": {"cpu_allocator": "tcmalloc"}})
