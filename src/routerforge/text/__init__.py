"""Text normalisation shared by training and the runtime (one offset map back to the original characters)."""

from __future__ import annotations

from .normalise import CURRENT, Normalised, normalise, normaliser_for

__all__ = ["CURRENT", "Normalised", "normalise", "normaliser_for"]
