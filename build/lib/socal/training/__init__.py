"""Training and evaluating one run: the VideoMAE model, optimizer and scheduler, the engine
(loop, precision, gradient accumulation, interrupts), checkpoints, data-parallel helpers,
metrics and baselines, and ``run``, which ties them together for ``train.py``.

May import ``socal.data`` and the shared base (``socal.config``, ``socal.errors``,
``socal.monitor``); never ``socal.sagemaker``
(the container side wraps a run, a run does not know where it runs).
"""
