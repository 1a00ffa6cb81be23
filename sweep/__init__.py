"""Sweep engine for localizing memorization (Maini et al., ICML 2023): science in pure functions, Ray in engine.py."""
