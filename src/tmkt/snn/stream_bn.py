"""Per-stream BatchNorm statistics for several streams run as one interleaved batch.

A two-stream method can run both streams through the shared network as one batch of 2B
samples instead of two passes of B (`method.two_stream: concat`). Plain BN would then pool the
statistics of both streams; He et al.'s method normalises each stream by its own. Inside
`stream_batch_norm(g)`, every `SeqBatchNorm2d` treats a batch whose sample index is
`b * g + s` (stream s, interleaved) as g streams: each gets its own batch statistics, and the
running statistics are updated once per stream in stream order, as g separate passes would.

How: a contiguous [N, C, H, W] batch of interleaved samples is, as memory, a batch of N / g
samples with g * C channels (stream-major channels), so one ordinary BN call over that view
computes per-stream statistics with no copy; the affine parameters enter repeated g times.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import Tensor, nn

_GROUPS: ContextVar[int] = ContextVar("tmkt_bn_stream_groups", default=1)
_FROZEN: ContextVar[frozenset[int]] = ContextVar("tmkt_bn_frozen_streams", default=frozenset())


@contextmanager
def stream_batch_norm(groups: int) -> Iterator[None]:
    """Within this block, SeqBatchNorm2d keeps separate statistics for `groups` interleaved
    streams (sample index b * groups + s)."""
    if not isinstance(groups, int) or groups < 1:
        raise ValueError(f"stream groups must be a positive integer, got {groups!r}")
    token = _GROUPS.set(groups)
    try:
        yield
    finally:
        _GROUPS.reset(token)


@contextmanager
def frozen_streams(streams: frozenset[int] | set[int] | tuple[int, ...]) -> Iterator[None]:
    """Within this block, the interleaved streams listed do not update the running statistics
    (they are still normalised by their own batch statistics), e.g. `{0}`: only the event stream
    of a two-stream batch shapes what evaluation uses (`method.bn_stats: event`)."""
    token = _FROZEN.set(frozenset(int(s) for s in streams))
    try:
        yield
    finally:
        _FROZEN.reset(token)


@contextmanager
def keep_running_stats(model: nn.Module) -> Iterator[None]:
    """Run a block (a forward pass in training mode) without changing any BN layer's running
    statistics: the block updates scratch copies, and every `_BatchNorm` gets its own buffers
    back on exit (untouched, so a graph that saved them stays valid). The two-pass twin of
    `frozen_streams`, and it serves any BN layer (a user's `nn.BatchNorm*` too)."""
    names = ("running_mean", "running_var", "num_batches_tracked")
    saved = []
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            for name in names:
                buf = m._buffers.get(name)
                if buf is not None:
                    saved.append((m, name, buf))
                    m._buffers[name] = buf.clone()
    try:
        yield
    finally:
        for m, name, buf in saved:
            m._buffers[name] = buf


def bn_groups() -> int:
    """Number of interleaved streams the current BN calls must keep apart (1: plain BN)."""
    return _GROUPS.get()


def interleave(*streams: Tensor, dim: int = 1) -> Tensor:
    """Stack same-shaped streams so that sample b of stream s lands at index b * len + s."""
    return torch.stack(streams, dim=dim + 1).flatten(dim, dim + 1)


def deinterleave(x: Tensor, groups: int, stream: int, dim: int = 1) -> Tensor:
    """The samples of one stream of an interleaved batch (a strided view)."""
    return x.unflatten(dim, (-1, groups)).select(dim + 1, stream)


def grouped_view(x: Tensor, groups: int) -> Tensor:
    """[N, C, ...] with interleaved streams -> [N / groups, groups * C, ...] (a view)."""
    n, c = x.shape[:2]
    if n % groups:
        raise ValueError(
            f"a batch of {n} samples cannot hold {groups} interleaved streams of equal size"
        )
    return x.contiguous().view(n // groups, groups * c, *x.shape[2:])


def running_args(
    bn: nn.modules.batchnorm._BatchNorm, groups: int
) -> tuple[bool, Tensor | None, Tensor | None, float]:
    """(use batch statistics, running mean, running var, momentum) for one grouped BN call.

    In training with running statistics, the buffers handed to the call are zeroed scratch with
    momentum 1, so they come back holding each stream's batch mean and unbiased variance; then
    `update_running` applies them to the module's buffers. In eval they are the running
    statistics repeated per stream."""
    tracking = bn.training and bn.track_running_stats
    if tracking:
        c = bn.num_features
        scratch = bn.running_mean.new_zeros(groups * c)
        return True, scratch, torch.ones_like(scratch), 1.0
    if not bn.training and bn.running_mean is not None:
        return False, bn.running_mean.repeat(groups), bn.running_var.repeat(groups), 0.0
    return True, None, None, 0.0


@torch.no_grad()
def update_running(
    bn: nn.modules.batchnorm._BatchNorm,
    stats: list[tuple[Tensor | None, Tensor | None]],
    groups: int,
) -> None:
    """Apply the batch statistics of one or more grouped BN calls (in call order, e.g. the time
    steps of a per-step BN) to the running ones: all of stream 0's first, then stream 1's, as
    `groups` separate passes would (momentum, or the cumulative average when it is None),
    skipping the streams `frozen_streams` names. Nothing to do unless the module tracks running
    statistics in training, where `running_args` handed out the (mean, var) buffers collected in
    `stats`."""
    if not (bn.training and bn.track_running_stats):
        return
    c = bn.num_features
    frozen = _FROZEN.get()
    for s in range(groups):
        if s in frozen:
            continue
        for mean_g, var_g in stats:
            bn.num_batches_tracked.add_(1)
            m = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
            bn.running_mean.mul_(1.0 - m).add_(mean_g[s * c:(s + 1) * c], alpha=m)
            bn.running_var.mul_(1.0 - m).add_(var_g[s * c:(s + 1) * c], alpha=m)


def repeat_affine(p: Tensor | None, groups: int) -> Tensor | None:
    """An affine parameter repeated per stream (autograd sums the streams' gradients)."""
    return None if p is None else p.repeat(groups)
