"""Build the frame cache once: ``python -m socal.prepare data.root=PATH [overrides]``.

Takes the same overrides as ``train.py`` (the window and the model's image size decide what
is cached). Interrupt it at any time: a rerun keeps the trials already written, rebuilds the
ones whose source frames changed, and removes their stale files. See ``socal.data.frame_cache``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Optional

from omegaconf import DictConfig

from socal.config import compose_train
from socal.data.check import checked_trials
from socal.data.frame_cache import default_dir, prepare, variant_name
from socal.data.synthetic import data_root
from socal.errors import exit_on_user_error
from socal.models import model_spec

log = logging.getLogger("socal.data.prepare")


def run(cfg: DictConfig, progress: bool = True) -> Path:
    """Prepare the cache a training run of ``cfg`` will use; returns its directory."""
    root = data_root(cfg.data, progress=progress)
    trials = checked_trials(root, cfg.data.target.value)
    size = model_spec(cfg.model).image_size
    cache_dir = Path(cfg.data.cache_dir).expanduser() if cfg.data.cache_dir else default_dir(root)
    directory = cache_dir / variant_name(size, cfg.data.window)
    log.info("frame cache %s: short side %d px, window %s", directory, size, cfg.data.window)
    result = prepare(trials, cfg.data.window, size, cache_dir, progress=progress)
    for line in result.lines():
        log.info(line)
    return directory


def main(argv: Optional[list[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with exit_on_user_error():
        cfg = compose_train(sys.argv[1:] if argv is None else argv)
        run(cfg, progress=cfg.trainer.progress)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
