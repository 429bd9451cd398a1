"""tmkt.transfer: time-step mixup, its schedules, the transfer losses and the MAG/MRP heads."""

from tmkt.transfer.heads import MAGHead, MRPHead
from tmkt.transfer.losses import DomainLoss, linear_cka, mag_loss, mrp_loss, tet_loss
from tmkt.transfer.schedules import SCHEDULES, Schedule, build_schedule, progress_of
from tmkt.transfer.tsm import (
    MIXERS,
    Mixed,
    expected_event_fraction,
    mix,
    mix_by_mask,
    sample_mask,
    sample_tstar,
    sliding_mask,
    solve_p,
    tsm_mask,
    tstar_to_mask,
    untruncated_mask,
)

__all__ = [
    "MIXERS",
    "SCHEDULES",
    "DomainLoss",
    "MAGHead",
    "MRPHead",
    "Mixed",
    "Schedule",
    "build_schedule",
    "expected_event_fraction",
    "linear_cka",
    "mag_loss",
    "mix",
    "mix_by_mask",
    "mrp_loss",
    "progress_of",
    "sample_mask",
    "sample_tstar",
    "sliding_mask",
    "solve_p",
    "tet_loss",
    "tsm_mask",
    "tstar_to_mask",
    "untruncated_mask",
]
