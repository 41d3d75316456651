"""Staged hyperparameter search with Optuna (``medfit tune``)."""
