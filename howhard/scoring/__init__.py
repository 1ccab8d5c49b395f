"""Scorers and verifiers that rank a request's sampled completions."""

from howhard.scoring.base import AnswerExtractor, Scorer
from howhard.scoring.blocking import BlockingScorer
from howhard.scoring.extract import extract_final_answer, normalize_answer
from howhard.scoring.math_verifier import MathAnswerVerifier
from howhard.scoring.registry import resolve_scorer
from howhard.scoring.scorers import CallableScorer, ExactMatch, MeanLogprob
from howhard.scoring.short_answer import ShortAnswerVerifier

__all__ = [
    "AnswerExtractor",
    "BlockingScorer",
    "CallableScorer",
    "ExactMatch",
    "MathAnswerVerifier",
    "MeanLogprob",
    "Scorer",
    "ShortAnswerVerifier",
    "extract_final_answer",
    "normalize_answer",
    "resolve_scorer",
]
