"""Hostile manifests (issue 14): a 2 KB file must not take the machine.

The bombs run in a subprocess under `resource` limits (address space, CPU seconds), so a
regression fails the test instead of eating the test machine.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from contract.errors import UserError
from contract.manifest import load_manifest, parse_action_string
from contract.manifest.actions import ActionStringError
from contract.manifest.schema import MAX_CLIPS_TOTAL, MAX_FRAMES

pytestmark = pytest.mark.timeout(120)

QUICKSTART = "manifests/examples/quickstart.yaml"


def billion_laughs(levels: int = 9) -> str:
    """Nine anchors of nine aliases each: 432 bytes of YAML, 9^9 values once expanded."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def run_limited(code: str, *, memory_mb: int = 1500, cpu_s: int = 30) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter with an address-space and CPU-time ceiling."""
    prelude = textwrap.dedent(f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, ({memory_mb} << 20, {memory_mb} << 20))
        resource.setrlimit(resource.RLIMIT_CPU, ({cpu_s}, {cpu_s}))
    """)
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True, timeout=cpu_s + 30)


def test_billion_laughs_is_refused_in_one_line_within_limits(tmp_path):
    bomb = tmp_path / "laughs.yaml"
    bomb.write_text(billion_laughs())
    result = run_limited(f"""
        import sys
        from pipeline.cli import main
        sys.argv = ["worldloom", "manifest", "validate", {str(bomb)!r}]
        main()
    """, cpu_s=20)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "aliases" in lines[0] and "laughs.yaml" in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_alias_budget_and_self_reference():
    with pytest.raises(UserError, match="expand the document past"):
        load_manifest(billion_laughs(6))  # 9^6 = 531441 values: still over the budget
    with pytest.raises(UserError, match="refers to the mapping or list that contains it"):
        load_manifest("a: &x [1, *x]\n")
    # A small, honest use of anchors still works (and reaches the schema check).
    with pytest.raises(UserError, match="unknown field `a`"):
        load_manifest(open(QUICKSTART).read() + "a: &pos [1, 2, 3]\nb: *pos\n")


def test_huge_manifest_text_is_refused():
    with pytest.raises(UserError, match="characters, more than"):
        load_manifest("# " + "x" * (3 << 20) + "\nversion: 1\n")


@pytest.mark.parametrize("text", ["w-1000000000000", "w-50000000,w-50000000", "w-" + "9" * 5000])
def test_action_string_bombs_fail_before_allocating(text):
    result = run_limited(f"""
        from contract.manifest.actions import ActionStringError, parse_action_string
        try:
            parse_action_string({text!r})
        except ActionStringError as error:
            print("refused:", error)
        try:
            parse_action_string({text!r}, frames=16)
        except ActionStringError as error:
            print("refused:", error)
    """, memory_mb=700, cpu_s=10)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("refused:") == 2, result.stdout


def test_action_string_lengths_still_exact():
    assert parse_action_string("w-3,a-2").shape == (5, 8)
    assert parse_action_string("w-3", frames=5)[:, 0].tolist() == [1, 1, 1, 0, 0]
    assert parse_action_string(f"w-{MAX_FRAMES}").shape == (MAX_FRAMES, 8)
    with pytest.raises(ActionStringError, match="lasts 6 frames but the clip has 5"):
        parse_action_string("w-3,a-3", frames=5)
    with pytest.raises(ActionStringError, match=f"more than a clip may have \\({MAX_FRAMES}\\)"):
        parse_action_string(f"w-{MAX_FRAMES},a-1")


def _quickstart_with(**changes: str) -> str:
    text = open(QUICKSTART).read()
    for old, new in changes.items():
        assert old in text
        text = text.replace(old, new, 1)
    return text


def test_action_bomb_in_a_manifest_is_a_field_error():
    import yaml

    data = yaml.safe_load(open(QUICKSTART))
    scene = next(s for s in data["scenes"] if s["motion"]["policy"] == "scripted")
    scene["motion"]["actions"] = "w-50000000,w-50000000"
    with pytest.raises(UserError, match=r"motion\.actions: the action string lasts 100000000 frames but the clip has"):
        load_manifest(yaml.safe_dump(data))


def test_counts_and_sizes_have_ceilings():
    import yaml

    base = yaml.safe_load(open(QUICKSTART))
    too_many_frames = {**base, "output": {**base["output"], "frames": MAX_FRAMES + 1}}
    with pytest.raises(UserError, match=r"output\.frames: .* is out of range; fix: use a value <= 10000"):
        load_manifest(yaml.safe_dump(too_many_frames))
    scenes = [dict(scene, name=f"s{i}", clips=MAX_CLIPS_TOTAL // 2) for i, scene in enumerate(base["scenes"][:1] * 3)]
    with pytest.raises(UserError, match=f"more than the limit of {MAX_CLIPS_TOTAL}"):
        load_manifest(yaml.safe_dump({**base, "scenes": scenes}))
    with pytest.raises(UserError, match=r"description: is too long"):
        load_manifest(yaml.safe_dump({**base, "description": "x" * 10_001}))
    many_scenes = [dict(base["scenes"][0], name=f"s{i}") for i in range(1001)]
    with pytest.raises(UserError, match=r"scenes: has 1001 items; fix: give at most 1000 items"):
        load_manifest(yaml.safe_dump({**base, "scenes": many_scenes}))


@pytest.mark.parametrize("make_text", [
    '"a: " + "[" * 1_000_000 + "]" * 1_000_000 + "\\n"',  # PyYAML's scanner is quadratic in flow nesting
    '"a: " + "{x: " * 100_000 + "\\n"',
    '"a:\\n" + "".join("  " * i + f"k{i}:\\n" for i in range(1, 200)) + "  " * 200 + "x: 1\\n"',  # block nesting
])
def test_deep_nesting_is_refused_at_once(make_text):
    result = run_limited(f"""
        from contract.errors import UserError
        from contract.manifest import load_manifest
        try:
            load_manifest({make_text})
        except UserError as error:
            print(error.one_line())
    """, cpu_s=10)
    assert result.returncode == 0 and "nest more than 64 levels deep" in result.stdout, result.stderr[-1500:]
