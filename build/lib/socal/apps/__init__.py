"""The Hydra apps behind ``socal-train``, ``socal-launch`` and ``socal-predict`` (and the
``train.py``, ``launch.py`` and ``predict.py`` files at the top of a checkout)."""
