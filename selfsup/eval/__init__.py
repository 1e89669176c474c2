"""Evaluation of frozen representations: linear probe, kNN, feature extraction, reports."""
