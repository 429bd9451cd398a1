"""tmkt.datasets: event + static datasets, pairing, splits, frame cache, downloads."""

from tmkt.datasets import cifar10dvs as _cifar10dvs  # noqa: F401  (registers the families)
from tmkt.datasets import folder as _folder  # noqa: F401
from tmkt.datasets import ncaltech101 as _ncaltech101  # noqa: F401
from tmkt.datasets import nmnist as _nmnist  # noqa: F401
from tmkt.datasets.base import DatasetError, Item, Sources
from tmkt.datasets.collate import SampleBatch, compact_collate, expand_like, fast_collate
from tmkt.datasets.config import DataConfig
from tmkt.datasets.download import download
from tmkt.datasets.event_frames import EventDataset, build_events
from tmkt.datasets.paired import PairedDataset, build_paired
from tmkt.datasets.prepare import Prepared, prepare, write_split
from tmkt.datasets.registry import DATASETS, get_sources
from tmkt.datasets.sim_static import SimStaticFrames, static_sim_settings
from tmkt.datasets.splits import Split, load_split, save_split
from tmkt.datasets.static_frames import StaticDataset, build_static
from tmkt.datasets.static_pool import StaticPoolDataset

__all__ = [
    "DATASETS",
    "DataConfig",
    "DatasetError",
    "EventDataset",
    "Item",
    "PairedDataset",
    "Prepared",
    "SampleBatch",
    "SimStaticFrames",
    "Sources",
    "Split",
    "StaticDataset",
    "StaticPoolDataset",
    "build_events",
    "build_paired",
    "build_static",
    "compact_collate",
    "download",
    "expand_like",
    "fast_collate",
    "get_sources",
    "load_split",
    "prepare",
    "save_split",
    "static_sim_settings",
    "write_split",
]
