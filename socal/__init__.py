"""socal: video-classifier experiments on SOCAL surgical video, locally or on Amazon SageMaker.

Layers, bottom up (checked by the import-linter contracts in ``pyproject.toml``):

- ``socal.config``, ``socal.errors``, ``socal.monitor``, ``socal.s3``: the shared base (config
  schemas, one-line user errors, the monitored metrics and their direction, S3 URIs).
- ``socal.models``: model families behind one seam (``socal.models.spec``), and their registry.
- ``socal.data``: reading, checking, caching and splitting SOCAL; clips and augmentation.
- ``socal.report``: statistics, plots and the report across runs; torch-free, used by training.
- ``socal.training``: model, optimisation loop, checkpoints, metrics, one run end to end.
- ``socal.sagemaker``: the launcher (torch-free) and the on-instance container side.

- ``socal.apps``: the Hydra apps behind ``socal-train``, ``socal-launch`` and ``socal-predict``.

The configs are package data (``socal/conf``). The console scripts in ``pyproject.toml`` call
the code directly; ``python -m socal.check|prepare|synthetic|upload|jobs`` stay as aliases.
"""
