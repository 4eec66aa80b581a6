"""Results people can publish: statistics, plots and the report across runs.

- ``metrics``: test metrics from predictions, calibration, the validation-chosen threshold.
- ``intervals``: bootstrap intervals over surgeons, exact binomial intervals, paired differences.
- ``run_results``: what one run adds to ``metrics.json`` and prints (``format_results``).
- ``plots``: PNG figures of one run and of a report (matplotlib, Agg, no display).
- ``runs``, ``aggregate``, ``write``: ``python -m socal.report PATH ...`` across runs.

Imports neither torch nor ``socal.training`` nor ``socal.sagemaker`` (an import-linter contract),
so a laptop without torch can report on runs that trained elsewhere; ``socal.training`` calls in.
"""
