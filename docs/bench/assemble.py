"""Assemble docs/benchmarks.md from the summary below and the per-area pages in docs/bench/."""
from pathlib import Path

root = Path(__file__).resolve().parents[1]
summary = Path(__file__).with_name("summary.md").read_text()
order = ["render", "procedural", "manifests", "generate", "curate", "model", "training", "unreal"]
parts = [summary.rstrip(), ""]
for name in order:
    page = root / "bench" / f"{name}.md"
    if not page.exists():
        continue
    text = page.read_text().strip()
    lines = [("#" + line) if line.startswith("#") else line for line in text.splitlines()]
    parts += ["", f"<!-- from docs/bench/{name}.md -->", *lines, ""]
(root / "benchmarks.md").write_text("\n".join(parts) + "\n")
