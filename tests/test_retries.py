"""The retry rule and Ray start-up shared by generate and curate (issue 10): one policy, one CPU rule."""
from __future__ import annotations

import pytest

from pipeline.retries import Attempts, RetryPolicy


def test_a_policy_allows_retries_extra_attempts_then_stops() -> None:
    policy = RetryPolicy(2)
    assert policy.max_attempts == 3
    assert [policy.allows_another(n) for n in (1, 2, 3)] == [True, True, False]
    assert not RetryPolicy(0).allows_another(1)
    with pytest.raises(ValueError, match="retries"):
        RetryPolicy(-1)


def test_attempts_count_per_key_under_the_policy() -> None:
    attempts = Attempts(RetryPolicy(1))
    assert attempts.begin("a") == 1 and attempts.may_retry("a")
    assert attempts.begin("a") == 2 and not attempts.may_retry("a")
    assert attempts["b"] == 0 and attempts.begin("b") == 1


def test_generate_and_curate_read_the_same_rule_from_their_configs() -> None:
    """`retries: N` (generate) and `run.max_retries: N` (curate) mean the same number of attempts."""
    from pipeline.curate.config import CurateConfig, RunConfig
    from pipeline.generate.config import GenerateConfig

    generate = RetryPolicy(GenerateConfig(retries=3).retries)
    curate = RetryPolicy(CurateConfig(run=RunConfig(max_retries=3)).run.max_retries)
    assert generate == curate and generate.max_attempts == 4


def test_local_ray_cpus_are_raised_to_what_the_work_declares(monkeypatch) -> None:
    from pipeline import ray_runtime

    seen: dict[str, float] = {}
    monkeypatch.setattr(ray_runtime, "init_ray", lambda address, num_cpus: seen.update(num_cpus=num_cpus) or True)
    monkeypatch.setattr(ray_runtime.os, "cpu_count", lambda: 2)
    assert ray_runtime.ensure_ray(None) and seen["num_cpus"] == 2.0
    ray_runtime.ensure_ray(None, cpus=3)
    assert seen["num_cpus"] == 3.0
    ray_runtime.ensure_ray(None, cpus=3, at_least=4.5)   # oversubscribing on purpose: never fewer than declared
    assert seen["num_cpus"] == 5.0
