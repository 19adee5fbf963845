"""Experiment tracking beside ``metrics.csv``: MLflow, TensorBoard's HParams."""
