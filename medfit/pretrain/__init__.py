"""Self-supervised ViT pretraining (MAE, DINO-style self-distillation, query-box localisation) on unlabelled images."""
