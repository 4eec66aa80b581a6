"""Reading and preparing SOCAL: its CSVs, the folder index and its checks, JPEG decoding, the
prepared frame cache, clip windows and sampling, augmentation, splits, the synthetic generator.

May import ``socal.config`` and ``socal.errors`` only, never ``socal.training`` or
``socal.sagemaker``: everything here is usable without a model or AWS.
"""
