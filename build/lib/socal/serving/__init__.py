"""Serving a trained model: prediction on new trials (``predict.py``) from a run folder, a
``model.tar.gz`` or MLflow, and the SageMaker endpoint handler shipped inside ``model.tar.gz``.
The model package itself (what a run writes, how it loads) is ``socal.training.package``.

May import ``socal.data``, ``socal.training``, ``socal.config`` and ``socal.errors``; never
``socal.sagemaker``. mlflow and boto3 are imported only when a source needs them.
"""
