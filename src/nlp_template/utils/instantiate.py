"""Instantiating lists of objects (callbacks, loggers) from config groups where each entry has a `_target_`."""

from __future__ import annotations

import logging
from typing import Any

import hydra
from omegaconf import DictConfig

log = logging.getLogger(__name__)


def instantiate_list(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a group that has a `_target_` (others, like shared settings, are skipped)."""
    if not group:
        return []
    objects = []
    for name, entry in group.items():
        if isinstance(entry, DictConfig) and "_target_" in entry:
            log.info("Instantiating %s <%s>", name, entry._target_)
            objects.append(hydra.utils.instantiate(entry))
    return objects
