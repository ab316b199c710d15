"""A disk cache for tokenized splits, keyed by everything that decides the token ids.

`datasets.map` caches only data sets that are backed by files, and its fingerprints change with in-memory data;
an explicit key (source fingerprint + tokenizer hash + settings) makes "same inputs, no tokenization" hold for every
source, including the embedded generator. Entries are written to a temporary folder and renamed into place, so an
interrupted or concurrent run never leaves a half-written entry behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from datasets import DatasetDict, disable_progress_bars, enable_progress_bars, is_progress_bar_enabled
from datasets import load_from_disk as _load_from_disk

log = logging.getLogger(__name__)
META_FILE = "meta.json"


def load_from_disk(directory: Path) -> DatasetDict:
    """Memory-map saved splits, without a progress bar per split."""
    return _quietly(lambda: _load_from_disk(str(directory)))


def _quietly(action: Callable[[], Any]) -> Any:
    enabled = is_progress_bar_enabled()
    disable_progress_bars()
    try:
        return action()
    finally:
        if enabled:
            enable_progress_bars()


def cache_key(*parts: Any) -> str:
    """A short stable hash of the parts (JSON-encoded, so dicts and lists work)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


def cached_splits(
    cache_dir: str | Path, key: str, build: Callable[[], tuple[DatasetDict, dict]]
) -> tuple[DatasetDict, dict]:
    """Return the cached (splits, metadata) for `key`, calling `build()` and saving its result on a miss."""
    directory = Path(cache_dir) / "tokenized" / key
    if (directory / META_FILE).is_file():
        log.info("Tokenized data found in cache: %s", directory)
        return load_from_disk(directory), json.loads((directory / META_FILE).read_text())
    splits, meta = build()
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{key}-"))
    _quietly(lambda: splits.save_to_disk(str(staging)))
    (staging / META_FILE).write_text(json.dumps(meta, indent=2))
    try:
        staging.rename(directory)
    except OSError:  # a concurrent run saved the same entry first; theirs is identical
        shutil.rmtree(staging, ignore_errors=True)
    log.info("Tokenized data saved to cache: %s", directory)
    # Reload from disk so the returned splits are memory-mapped like on a cache hit.
    return load_from_disk(directory), meta
