"""Classifiers and segmenters trained on synthetic/real data; transfer experiments and reports."""
