"""One retry rule for the pipeline's Ray work: try once, then `retries` more times after a failure.

Why shared: generate retries a clip's render (its server may have crashed and been restarted)
and curate retries an input's task (its worker may have died); both used to write the rule
inline (`attempts <= retries`). One policy means `retries: 2` (generate) and
`run.max_retries: 2` (curate) give the same three attempts, and both report the attempts used.
What is retried stays each caller's choice: generate does not retry a processing error (the
same pixels fail the same way), curate retries any task error.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RetryPolicy:
    """`retries` extra attempts after the first one."""

    retries: int

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")

    @property
    def max_attempts(self) -> int:
        return self.retries + 1

    def allows_another(self, attempts: int) -> bool:
        """After `attempts` failed attempts, may the work be tried again?"""
        return attempts <= self.retries


@dataclass
class Attempts:
    """Attempts per key under one policy, for callers that keep no count of their own."""

    policy: RetryPolicy
    counts: Counter[Hashable] = field(default_factory=Counter)

    def begin(self, key: Hashable) -> int:
        """Count one more attempt of `key`; returns its number (1 for the first)."""
        self.counts[key] += 1
        return self.counts[key]

    def __getitem__(self, key: Hashable) -> int:
        return self.counts[key]

    def may_retry(self, key: Hashable) -> bool:
        return self.policy.allows_another(self.counts[key])
