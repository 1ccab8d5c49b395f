"""Benchmark task suite: short-answer question families with seeded generators and verifiers.

``build_splits()`` generates the core build's train/val/test questions and ``build_transfer()``
the transfer build (every family, several phrasings); ``TaskScorer`` turns each family's
deterministic verifier into binary rewards for ``howhard collect`` and best-of-k serving.
"""

from howhard.tasks.base import Question, TaskFamily
from howhard.tasks.extract import extract_letter, extract_number
from howhard.tasks.scorer import TaskScorer
from howhard.tasks.styles import STYLES, Style, restyle, style
from howhard.tasks.suite import (
    ADDED_FAMILIES,
    CORE_FAMILIES,
    FAMILIES,
    SPLITS,
    build_splits,
    build_transfer,
    family,
    question_id,
    write_jsonl,
)

__all__ = [  # noqa: RUF022 - plain sorted() order, as tests/test_public_api.py checks
    "ADDED_FAMILIES",
    "CORE_FAMILIES",
    "FAMILIES",
    "Question",
    "SPLITS",
    "STYLES",
    "Style",
    "TaskFamily",
    "TaskScorer",
    "build_splits",
    "build_transfer",
    "extract_letter",
    "extract_number",
    "family",
    "question_id",
    "restyle",
    "style",
    "write_jsonl",
]
