"""Serving a trained model (the package a run writes, socal.training.package): prediction on new trials
(``predict.py``), and the SageMaker endpoint handler shipped inside ``model.tar.gz``.

May import ``socal.data``, ``socal.training``, ``socal.config`` and ``socal.errors``; never
``socal.sagemaker``. mlflow and boto3 are imported only when a source needs them.
"""
