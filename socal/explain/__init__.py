"""Explanations of a trained model's predictions: which seconds, and which parts of the frame.

A layer above training (it loads a model package) that neither training nor the report import;
the figures are drawn by the torch-free ``socal.report.explain_plots``.
"""
