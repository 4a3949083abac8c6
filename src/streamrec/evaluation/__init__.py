"""Offline evaluation: the protocols of EVALUATION.md run on the production domain code."""
