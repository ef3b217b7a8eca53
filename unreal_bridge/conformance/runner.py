"""Run the conformance rules against a server and collect a report.

Each rule is a function `rule(ctx) -> str` returning a one-line pass message, or raising
`RuleFailed("why, and what a conforming server does")` / `RuleSkipped("why")`. Rules run in a
fixed order and share what earlier rules learned (server info, the open session, the full
render) through `CheckContext`; a rule whose prerequisite failed is skipped with the name of
that prerequisite, so the report always names the first broken rule.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import grpc

from contract.clip import ResolvedClip
from unreal_bridge.protos.worldloom.render.v1 import render_pb2 as pb
from unreal_bridge.protos.worldloom.render.v1 import render_pb2_grpc as pb_grpc

Status = Literal["pass", "fail", "skip"]


class RuleFailed(Exception):
    """The server broke the rule; the message says how."""


class RuleSkipped(Exception):
    """The rule does not apply (capability not advertised) or a prerequisite failed."""


@dataclass
class RuleResult:
    name: str
    status: Status
    message: str
    seconds: float


@dataclass
class ConformanceReport:
    address: str
    results: list[RuleResult] = field(default_factory=list)

    @property
    def failed(self) -> list[RuleResult]:
        return [result for result in self.results if result.status == "fail"]

    @property
    def passed(self) -> bool:
        return not self.failed

    def result(self, name: str) -> RuleResult:
        return next(result for result in self.results if result.name == name)

    def to_dict(self) -> dict:
        return {
            "address": self.address,
            "passed": self.passed,
            "rules": [result.__dict__ for result in self.results],
        }


@dataclass
class CheckOptions:
    manifest_yaml: str
    scene: str = ""
    clip_index: int = 0
    auth_token: str | None = None
    root_certificates: bytes | None = None  # PEM of the CA that signed a TLS server's certificate
    connect_timeout_s: float = 10.0
    call_timeout_s: float = 10.0  # cheap calls
    open_timeout_s: float = 300.0  # OpenSession may load a level
    render_timeout_s: float = 300.0  # one whole Render call of the probe clip


@dataclass
class CheckContext:
    """What rules share: the channel, stubs and what earlier rules found out."""

    address: str
    options: CheckOptions
    channel: grpc.Channel
    stub: pb_grpc.RenderServiceStub
    info: pb.ServerInfo | None = None
    session: pb.OpenSessionResponse | None = None
    clip: dict | None = None  # the resolved clip document the server returned (hashed as sent)
    resolved: ResolvedClip | None = None  # its typed view
    full: object | None = None  # ReceivedStream of the full render
    passed: set[str] = field(default_factory=set)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        token = self.options.auth_token
        return (("authorization", f"Bearer {token}"),) if token else ()

    def open_request(self, *, dry_run: bool = False, manifest_yaml: str | None = None,
                     resolved_clip_json: str | None = None) -> pb.OpenSessionRequest:
        request = pb.OpenSessionRequest(
            scene=self.options.scene, clip_index=self.options.clip_index, dry_run=dry_run,
            auth_token=self.options.auth_token or "",
        )
        if resolved_clip_json is not None:
            request.resolved_clip_json = resolved_clip_json
        else:
            request.manifest_yaml = manifest_yaml if manifest_yaml is not None else self.options.manifest_yaml
        return request

    def open_session(self, **kwargs) -> pb.OpenSessionResponse:
        return self.stub.OpenSession(self.open_request(**kwargs), metadata=self.metadata, timeout=self.options.open_timeout_s)

    def close_session(self, session_id: str) -> None:
        self.stub.CloseSession(pb.CloseSessionRequest(session_id=session_id), metadata=self.metadata,
                               timeout=self.options.call_timeout_s)

    def require(self, *rules: str) -> None:
        missing = [rule for rule in rules if rule not in self.passed]
        if missing:
            raise RuleSkipped(f"needs rule {', '.join(missing)} to pass first")


Rule = Callable[[CheckContext], str]


def run_rules(address: str, options: CheckOptions, rules: list[tuple[str, Rule]],
              on_result: Callable[[RuleResult], None] | None = None) -> ConformanceReport:
    report = ConformanceReport(address=address)
    channel_options = [("grpc.max_receive_message_length", 8 << 20)]
    if options.root_certificates is not None:
        credentials = grpc.ssl_channel_credentials(root_certificates=options.root_certificates)
        channel = grpc.secure_channel(address, credentials, options=channel_options)
    else:
        channel = grpc.insecure_channel(address, options=channel_options)
    ctx = CheckContext(address=address, options=options, channel=channel, stub=pb_grpc.RenderServiceStub(channel))
    try:
        for name, rule in rules:
            started = time.monotonic()
            try:
                message, status = rule(ctx), "pass"
                ctx.passed.add(name)
            except RuleFailed as failure:
                message, status = str(failure), "fail"
            except RuleSkipped as skipped:
                message, status = str(skipped), "skip"
            except grpc.RpcError as error:  # an unexpected status is a failure of this rule
                message, status = f"unexpected {error.code().name}: {error.details()}", "fail"
            except Exception as error:  # a malformed answer fails the rule, not the run
                message, status = f"the server's answer broke the check ({type(error).__name__}: {error})", "fail"
            result = RuleResult(name=name, status=status, message=" ".join(message.split()),
                                seconds=round(time.monotonic() - started, 3))
            report.results.append(result)
            if on_result is not None:
                on_result(result)
    finally:
        if ctx.session is not None and ctx.session.session_id:
            try:
                ctx.close_session(ctx.session.session_id)
            except grpc.RpcError:
                pass
        channel.close()
    return report
