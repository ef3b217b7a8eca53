"""The render-server conformance suite: `worldloom render-server check HOST:PORT`.

    from unreal_bridge.conformance import run_conformance
    report = run_conformance("127.0.0.1:50051")
    assert report.passed, [r.name for r in report.failed]

Any server speaking worldloom.render.v1 (the procedural server, the Unreal Engine bridge, a
third-party renderer) must pass it; the rules are in `rules.py`, one function each.
"""
from __future__ import annotations

from collections.abc import Callable

from unreal_bridge.conformance.builtin_manifest import BUILTIN_MANIFEST
from unreal_bridge.conformance.runner import CheckOptions, ConformanceReport, RuleResult

__all__ = ["run_conformance", "ConformanceReport", "RuleResult", "CheckOptions", "BUILTIN_MANIFEST"]


def run_conformance(
    address: str,
    *,
    manifest_yaml: str | None = None,
    scene: str = "",
    clip_index: int = 0,
    auth_token: str | None = None,
    root_certificates: bytes | None = None,
    connect_timeout_s: float = 10.0,
    open_timeout_s: float = 300.0,
    render_timeout_s: float = 300.0,
    rules: list[str] | None = None,
    on_result: Callable[[RuleResult], None] | None = None,
) -> ConformanceReport:
    """Run the rules (all, or the named subset in suite order) against the server at `address`."""
    from unreal_bridge.conformance.rules import RULE_NAMES, RULES
    from unreal_bridge.conformance.runner import run_rules

    if rules:
        unknown = sorted(set(rules) - set(RULE_NAMES))
        if unknown:
            from contract.errors import UserError

            raise UserError(f"unknown rule(s) {', '.join(unknown)}; choose from {', '.join(RULE_NAMES)}")
    selected = [(name, rule) for name, rule in RULES if not rules or name in rules]
    options = CheckOptions(
        manifest_yaml=manifest_yaml or BUILTIN_MANIFEST,
        scene=scene,
        clip_index=clip_index,
        auth_token=auth_token,
        root_certificates=root_certificates,
        connect_timeout_s=connect_timeout_s,
        open_timeout_s=open_timeout_s,
        render_timeout_s=render_timeout_s,
    )
    return run_rules(address, options, selected, on_result=on_result)
