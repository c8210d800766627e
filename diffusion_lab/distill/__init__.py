"""Few-step generation by consistency distillation (Song et al. 2023) of a trained model."""
