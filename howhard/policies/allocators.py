"""Exact compute allocation: split a budget across requests where marginal reward is largest.

The allocators, by idea: :mod:`.online` solves each batch exactly (:func:`allocate`,
:func:`allocate_success_prob`, :class:`OnlineAllocator`); :mod:`.offline` fits one budget per
score bin on held-out data and serves requests one at a time (:class:`OfflineAllocator`);
:mod:`.selection` is the heap-free engine both online solvers share; :mod:`.validation` checks
their inputs. This module gathers the public names.
"""

from howhard.policies.offline import OfflineAllocator
from howhard.policies.online import OnlineAllocator, allocate, allocate_success_prob
from howhard.policies.validation import MONOTONE_TOLERANCE

__all__ = [
    "MONOTONE_TOLERANCE",
    "OfflineAllocator",
    "OnlineAllocator",
    "allocate",
    "allocate_success_prob",
]
