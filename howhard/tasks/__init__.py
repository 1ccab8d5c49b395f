"""Benchmark task suite: short-answer question families with seeded generators and verifiers.

``build_splits()`` generates the train/val/test questions; ``TaskScorer`` turns each family's
deterministic verifier into binary rewards for ``howhard collect`` and best-of-k serving.
"""

from howhard.tasks.base import Question, TaskFamily
from howhard.tasks.extract import extract_letter, extract_number
from howhard.tasks.scorer import TaskScorer
from howhard.tasks.suite import FAMILIES, SPLITS, build_splits, family, question_id, write_jsonl

__all__ = [  # noqa: RUF022 - plain sorted() order, as tests/test_public_api.py checks
    "FAMILIES",
    "Question",
    "SPLITS",
    "TaskFamily",
    "TaskScorer",
    "build_splits",
    "extract_letter",
    "extract_number",
    "family",
    "question_id",
    "write_jsonl",
]
