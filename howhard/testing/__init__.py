"""howhard.testing: conformance suites that user plug-ins (and the built-ins) run against.

- :class:`BackendContract` (:mod:`.backend`): every model backend (``howhard.backends.Backend``);
- :class:`LedgerContract` (:mod:`.ledger`): every quota store (``howhard.ledger.Ledger``);
- :class:`PolicyContract` (:mod:`.policy`): every policy (``howhard.policies.Policy``).

:mod:`howhard.testing.chaos` holds hostile plug-ins (a backend, scorer and policy that misbehave
on purpose, an audited ledger) and ``run_chaos``, which checks the scheduler's reliability
promises against them.

Subclass a contract in your own test module and supply the factory it asks for; every
``test_*`` method then runs against your implementation. Needs pytest, anyio's pytest plugin and
hypothesis (``pip install 'howhard[dev]'``); nothing else in howhard imports this package.
"""

from howhard.testing.backend import BackendContract
from howhard.testing.ledger import LedgerContract, ManualClock
from howhard.testing.policy import PolicyContract

__all__ = ["BackendContract", "LedgerContract", "ManualClock", "PolicyContract"]
