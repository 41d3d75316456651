"""Training: the Lightning module and engine, optimiser and schedule, datasets of prepared inputs, fit and predict."""
