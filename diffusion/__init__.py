"""Diffusion models: train, sample, refine rendered frames toward real, augment. Imports torch lazily."""
