"""socal's Hydra plugins: ``hydra/sweeper=sagemaker`` and socal's ``hydra/sweeper=optuna`` config.

Hydra finds them by scanning the ``hydra_plugins`` namespace package (this folder is in the repo
root, next to ``launch.py``; ``pip install -e .`` installs it too).
"""
