"""Drill: replay hostile manifests against a live `worldloom render-server` subprocess.

    .venv/bin/python benchmarks/drill_hostile.py [--rounds 3] [--json]

What it does (issue 14): starts a real procedural render server (`unreal_bridge.launch`), checks
that an honest dry run works, then fires every hostile request below concurrently, `--rounds`
times, while a probe thread asks the standard health service and `GetServerInfo` every 50 ms.
It prints how many hostile requests were refused (by status code), how many were wrongly
accepted, the health / GetServerInfo latency during the attack (p50, p99, max, and failed
probes), and the server's peak resident memory (VmHWM from /proc) before and after. Finally it
renders an honest clip, to show the server still serves.

The hostile set: eight "billion laughs" alias bombs (nine anchors of nine aliases, 432 bytes
each), a self-referencing alias, action bombs (`w-1000000000000`, `w-50000000,w-50000000`),
a 3 MB manifest, 20,000-deep nested YAML, a resolved clip claiming 10^12 frames, and a terrain
that names a private file on the server's disk as its heightmap.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from collections import Counter
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from unreal_bridge.launch import ProceduralServer  # noqa: E402
from unreal_bridge.protos.worldloom.render.v1 import render_pb2 as pb  # noqa: E402
from unreal_bridge.protos.worldloom.render.v1 import render_pb2_grpc as pb_grpc  # noqa: E402

QUICKSTART = (ROOT / "manifests/examples/quickstart.yaml").read_text()


def billion_laughs() -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]" for level in range(1, 9)]
    return "\n".join(lines) + "\n"


def _scripted(actions: str) -> str:
    """quickstart.yaml with its scripted scene's action string replaced (the scene is first)."""
    start = QUICKSTART.index("actions:")
    end = QUICKSTART.index("\n", start)
    return QUICKSTART[:start] + f'actions: "{actions}"' + QUICKSTART[end:]


def hostile_requests() -> list[tuple[str, pb.OpenSessionRequest]]:
    terrain = {
        "schema": "worldloom.resolved_clip/1", "key": "drill", "seeds": {"world": 1, "render": 1, "camera": 1, "motion": 1, "environment": 1},
        "output": {"width": 32, "height": 24, "fps": 8, "frames": 2}, "passes": ["rgb"],
        "world": {"generator": "terrain", "params": {"heightmap": "/etc/passwd"}},
        "camera": {"rig": "fixed", "start": {"position": [0, 0, 0]}, "intrinsics": {"fx": 16, "fy": 16, "cx": 16, "cy": 12, "width": 32, "height": 24}},
        "actions": {"per_frame": [[0.0] * 8, [0.0] * 8]}, "poses": None,
    }
    huge_frames = dict(terrain, output={"width": 32, "height": 24, "fps": 8, "frames": 10**12})
    requests = [("billion_laughs", pb.OpenSessionRequest(manifest_yaml=billion_laughs(), dry_run=True))] * 8
    requests += [
        ("self_alias", pb.OpenSessionRequest(manifest_yaml="a: &x [1, *x]\n", dry_run=True)),
        ("action_bomb_1e12", pb.OpenSessionRequest(manifest_yaml=_scripted("w-1000000000000"), dry_run=True)),
        ("action_bomb_2x5e7", pb.OpenSessionRequest(manifest_yaml=_scripted("w-50000000,w-50000000"), dry_run=True)),
        ("oversized_3MB", pb.OpenSessionRequest(manifest_yaml="# " + "x" * (3 << 20) + "\n" + QUICKSTART, dry_run=True)),
        ("deep_nesting", pb.OpenSessionRequest(manifest_yaml="a: " + "[" * 20000 + "]" * 20000 + "\n", dry_run=True)),
        ("frames_1e12", pb.OpenSessionRequest(resolved_clip_json=json.dumps(huge_frames), dry_run=True)),
        ("heightmap_/etc/passwd", pb.OpenSessionRequest(resolved_clip_json=json.dumps(terrain))),
    ]
    return requests


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


class Prober(threading.Thread):
    """Health Check and GetServerInfo every `interval` seconds; records latencies and failures."""

    def __init__(self, address: str, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.address, self.interval = address, interval
        self.health: list[float] = []
        self.info: list[float] = []
        self.failures = 0
        self.stop = threading.Event()

    def run(self) -> None:
        with grpc.insecure_channel(self.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            render = pb_grpc.RenderServiceStub(channel)
            while not self.stop.is_set():
                for call, sink in ((lambda: health.Check(health_pb2.HealthCheckRequest(), timeout=5), self.health),
                                   (lambda: render.GetServerInfo(pb.GetServerInfoRequest(), timeout=5), self.info)):
                    started = time.monotonic()
                    try:
                        call()
                        sink.append(time.monotonic() - started)
                    except grpc.RpcError:
                        self.failures += 1
                self.stop.wait(self.interval)


def _send(address: str, request: pb.OpenSessionRequest) -> tuple[str, float]:
    options = [("grpc.max_send_message_length", 8 << 20)]
    with grpc.insecure_channel(address, options=options) as channel:
        started = time.monotonic()
        try:
            pb_grpc.RenderServiceStub(channel).OpenSession(request, timeout=60)
            return "ACCEPTED", time.monotonic() - started
        except grpc.RpcError as error:
            return error.code().name, time.monotonic() - started


def _stats_ms(values: list[float]) -> str:
    if not values:
        return "no answers"
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return f"p50 {statistics.median(ordered) * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms, max {ordered[-1] * 1e3:.1f} ms ({len(ordered)} probes)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="times the whole hostile set is fired (concurrently within a round)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON too")
    args = parser.parse_args()

    with ProceduralServer() as server:
        address, pid = server.address, server.pid
        honest = _send(address, pb.OpenSessionRequest(manifest_yaml=QUICKSTART, dry_run=True))
        assert honest[0] == "ACCEPTED", honest
        rss_before = peak_rss_mb(pid)
        quiet = Prober(address)
        quiet.start()
        time.sleep(1.0)
        quiet.stop.set()
        quiet.join()

        prober = Prober(address)
        prober.start()
        outcomes: Counter = Counter()
        by_kind: dict[str, Counter] = {}
        kind_max: dict[str, float] = {}
        slowest = 0.0
        started = time.monotonic()
        requests = hostile_requests()
        for _ in range(args.rounds):
            with futures.ThreadPoolExecutor(len(requests)) as pool:
                results = list(pool.map(lambda item: (item[0], *_send(address, item[1])), requests))
            for kind, code, seconds in results:
                outcomes[code] += 1
                by_kind.setdefault(kind, Counter())[code] += 1
                slowest = max(slowest, seconds)
                kind_max[kind] = max(kind_max.get(kind, 0.0), seconds)
        attack_s = time.monotonic() - started
        prober.stop.set()
        prober.join()
        rss_after = peak_rss_mb(pid)

        from unreal_bridge.client import RenderClient

        with RenderClient(address) as client:
            rendered = client.render_clip(QUICKSTART, scene="street", clip_index=0)

    total = sum(outcomes.values())
    accepted = outcomes.get("ACCEPTED", 0)
    report = {
        "hostile_requests": total,
        "refused": total - accepted,
        "accepted": accepted,
        "refused_by_status": {code: count for code, count in sorted(outcomes.items()) if code != "ACCEPTED"},
        "by_kind": {kind: dict(counts) for kind, counts in by_kind.items()},
        "attack_seconds": round(attack_s, 2),
        "slowest_refusal_s": round(slowest, 3),
        "health_quiet": _stats_ms(quiet.health),
        "health_during_attack": _stats_ms(prober.health),
        "server_info_during_attack": _stats_ms(prober.info),
        "failed_probes": prober.failures,
        "server_peak_rss_mb_before": round(rss_before, 1),
        "server_peak_rss_mb_after": round(rss_after, 1),
        "honest_render_after_attack": f"{rendered.frame_count} frames",
    }
    print(f"hostile requests: {total} ({args.rounds} rounds of {len(requests)}, concurrent within a round) in {attack_s:.2f} s")
    print(f"refused: {total - accepted} ({', '.join(f'{c} {n}' for c, n in report['refused_by_status'].items())}); accepted: {accepted}")
    for kind, counts in by_kind.items():
        print(f"  {kind:24s} {dict(counts)}, slowest {kind_max[kind] * 1e3:.0f} ms")
    print(f"slowest refusal: {slowest * 1e3:.0f} ms")
    print(f"health, quiet:            {report['health_quiet']}")
    print(f"health during attack:     {report['health_during_attack']}")
    print(f"GetServerInfo during it:  {report['server_info_during_attack']}")
    print(f"failed probes: {prober.failures}")
    print(f"server peak RSS (VmHWM): {rss_before:.0f} MB before, {rss_after:.0f} MB after the attack")
    print(f"honest render after the attack: {rendered.frame_count} frames")
    if args.json:
        print(json.dumps(report, indent=2))
    if accepted or prober.failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
