"""Preprocessing: a ``Recipe`` (resolved ops + output geometry) applied to a manifest ``Row``, cached on disk.

``load_prepared(row, recipe)`` is how a row becomes an image for training, ``medfit preprocess``, predict and explain
alike; ``StudyReader`` builds study inputs (key slice, 2.5D stack, slice set, volume) from the same function.
"""
from medfit.preprocess.prepared import load_prepared, prepare, prepared_key
from medfit.preprocess.recipe import Recipe, cache_dir_for
from medfit.preprocess.recipes import OPS, RECIPES, resolve_ops

__all__ = ["OPS", "RECIPES", "Recipe", "cache_dir_for", "load_prepared", "prepare", "prepared_key", "resolve_ops"]
