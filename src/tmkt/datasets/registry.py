"""`DATASETS`: dataset-family name -> factory. A new family registers from its own module.

Factory contract::

    from tmkt.datasets.registry import DATASETS
    from tmkt.datasets.base import Item, Sources

    @DATASETS.register("myname")
    def my_factory(cfg: DataConfig) -> Sources:
        ...

- Input: the full `DataConfig` (roots, `exclude_background`, family extras in `cfg.options`).
- Output: a `Sources` (see `tmkt.datasets.base`): every event item and every static item with
  class names as labels, loaders for both, and the common sensor size (W, H) or None.
- Item refs must be unique and stable (relative paths); they name samples in split files and
  cache file lists. Set `Item.key` where an event recording's static picture is known (equal
  keys); set `Item.official` to "train"/"test" where the data ships an official split.
- Missing folders: raise `DatasetError` showing the expected layout (`base.require_dir`).
- Do no frame computation here: splitting, pairing, encoding and caching are done by
  `tmkt.datasets.prepare` and the datasets for every family alike.
- The module holding the factory must be imported before use; built-in families are imported
  by `tmkt.datasets`, others are imported by name from `tmkt.datasets.<name>` on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from tmkt.registry import Registry

if TYPE_CHECKING:
    from tmkt.datasets.base import Sources
    from tmkt.datasets.config import DataConfig

DatasetFactory = Callable[["DataConfig"], "Sources"]

DATASETS: Registry[DatasetFactory] = Registry("dataset")


def get_factory(name: str) -> DatasetFactory:
    """The factory for `name`, importing `tmkt.datasets.<name>` once if it is not registered."""
    if name not in DATASETS:
        module = f"tmkt.datasets.{name}"
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
    if name not in DATASETS:  # list every built-in family, also those registered on import
        for lazy in LAZY_MODULES:
            importlib.import_module(lazy)
    return DATASETS.get(name)


# built-in families registered by modules `tmkt.datasets` does not import up front
LAZY_MODULES = ("tmkt.datasets.sim",)


def get_sources(cfg: DataConfig) -> Sources:
    """Run the registered factory for `cfg.name`; its recordings are checked as they are read
    (`tmkt.datasets.checks`)."""
    from tmkt.datasets.checks import checked_sources

    return checked_sources(get_factory(cfg.name)(cfg))
