"""TFF's SQLite data sets: where they are kept, and one clear line when they cannot be had."""

import os
from collections.abc import Callable
from typing import Any

from fedlab.errors import DataError


def tff_cache_dir(cache_dir: str | None) -> str:
    """The folder TFF's loaders keep their databases in (``~/.tff`` unless given)."""
    return cache_dir or os.path.join(os.path.expanduser("~"), ".tff")


def load_tff_database(load_data: Callable[..., Any], cache_dir: str | None, file_name: str,
                      title: str, otherwise: str = "") -> Any:
    """``load_data(cache_dir=...)`` of a TFF data set kept as ``<cache_dir>/<file_name>``.

    TFF downloads the database once when the network reaches its storage.

    Raises:
      DataError: it is absent and cannot be downloaded (one line naming the path).
    """
    folder = tff_cache_dir(cache_dir)
    path = os.path.join(folder, file_name)
    try:
        return load_data(cache_dir=folder)
    except OSError as error:  # URLError is an OSError: no network, no file
        raise DataError(
            f"{title} is not at {path} and could not be downloaded "
            f"({getattr(error, 'reason', None) or error}). Copy {file_name} (TFF's "
            f"{file_name}.lzma, unxz'd) to {path} or set dataset.cache_dir to its folder"
            f"{otherwise}") from None
