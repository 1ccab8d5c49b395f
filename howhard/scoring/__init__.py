"""Scorers and verifiers that rank a request's sampled completions."""

from howhard.scoring.base import AnswerExtractor, Scorer

__all__ = ["AnswerExtractor", "Scorer"]
