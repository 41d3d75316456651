"""The commands: one module per CLI verb, each composing stage functions (the only layer that chains stages)."""
