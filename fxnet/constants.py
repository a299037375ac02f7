"""Every default and environment variable fxnet reads, in one place."""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "fxnet"

#: Set to 1 to get full tracebacks instead of one-line errors.
DEBUG_ENV = "FXNET_DEBUG"
#: Overrides the directory holding the user's own ``pretrained.toml``.
CONFIG_DIR_ENV = "FXNET_CONFIG_DIR"
#: Overrides the model download cache.
CACHE_DIR_ENV = "FXNET_CACHE_DIR"

#: Metadata key in the safetensors header that holds fxnet's JSON metadata.
CHECKPOINT_METADATA_KEY = "fxnet"
#: Bumped when the checkpoint metadata layout changes incompatibly.
CHECKPOINT_FORMAT_VERSION = 1

#: Frames read from disk per block by the streaming engine.
DEFAULT_BLOCK_FRAMES = 1 << 16
#: Chunks run through the model at once (per channel when channels are batched).
DEFAULT_BATCH_SIZE = 8

PACKAGE_DIR = Path(__file__).resolve().parent
WEIGHTS_DIR = PACKAGE_DIR / "weights"


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0", "false", "no")


def config_dir() -> Path:
    if os.environ.get(CONFIG_DIR_ENV):
        return Path(os.environ[CONFIG_DIR_ENV])
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME))


def cache_dir() -> Path:
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP_NAME))
