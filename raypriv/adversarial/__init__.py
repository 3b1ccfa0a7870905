"""The adversarial method of Wu et al.: losses (pure functions) now, the training loop next."""
