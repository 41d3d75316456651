"""Vision-language classifiers end to end: zero-shot scoring and LoRA fine-tuning into a normal medfit run folder."""
