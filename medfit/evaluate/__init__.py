"""Evaluation: predictions table -> metrics with CIs, a threshold chosen on validation and carried to test."""
from medfit.evaluate.run import evaluate_predictions, evaluate_run

__all__ = ["evaluate_predictions", "evaluate_run"]
