"""`select` and `mix`: re-sharding from the index alone, safely, deterministically."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_curate_helpers import curated_procedural  # noqa: E402

from pipeline.curate.expression import evaluate
from pipeline.curate.mix import MixSource, parse_source, plan_mix, run_mix
from pipeline.curate.select import run_select, selected_keys
from contract.errors import UserError
from pipeline.shards import iter_samples, read_dataset_json, read_index, verify_dataset


@pytest.fixture(scope="module")
def procedural(tmp_path_factory, ray_session):
    return curated_procedural(tmp_path_factory, "procedural")[0]


@pytest.fixture(scope="module")
def dashcam(tmp_path_factory, ray_session):
    return curated_procedural(tmp_path_factory, "dashcam")[0]


FRAME = pd.DataFrame({"motion": [0.1, 0.5, np.nan, 0.9], "aesthetic": [5.0, 4.0, 6.0, np.nan],
                      "domain": ["real", "real", "procedural", "unreal"], "frames": [10, 20, 30, 40]})


@pytest.mark.parametrize("expression,expected", [
    ("motion > 0.3 and aesthetic >= 4.5", [False, False, False, False]),   # nulls never match
    ("motion > 0.3 or aesthetic >= 4.5", [True, True, True, True]),
    ("not motion > 0.3", [True, False, True, False]),
    ("0.2 < motion <= 0.9", [False, True, False, True]),
    ("domain in ['real', 'unreal']", [True, True, False, True]),
    ("domain not in ('real',) and frames / 10 >= 3", [False, False, True, True]),
    ("domain == 'real' and (motion * 2 > 0.5)", [False, True, False, False]),
])
def test_expression_language(expression, expected):
    assert evaluate(expression, FRAME).tolist() == expected


@pytest.mark.parametrize("expression", [
    "__import__('os').system('true')", "motion.__class__", "[m for m in motion]", "lambda: 1",
    "motion[0] > 1", "open('x')", "motion > 0.3 and", "motoin > 1", "domain", "motion if 1 else 2",
])
def test_expression_language_refuses_anything_else_with_one_line(expression):
    with pytest.raises(UserError) as error:
        evaluate(expression, FRAME)
    assert "\n" not in error.value.one_line() and "--where" in error.value.one_line()


@pytest.mark.timeout(300)
def test_select_reshards_matching_clips_byte_for_byte(procedural, tmp_path):
    index = read_index(procedural / "index.parquet")
    kept = index[index["status"] == "kept"]
    threshold = float(kept["pixel_motion"].median())
    beauty = float(kept["aesthetic"].quantile(0.25))
    where = f"pixel_motion >= {threshold!r} and aesthetic >= {beauty!r} and black_fraction < 0.5"
    expected = sorted(kept.loc[(kept["pixel_motion"] >= threshold) & (kept["aesthetic"] >= beauty)
                               & (kept["black_fraction"] < 0.5), "key"])
    assert 0 < len(expected) < len(kept)
    assert selected_keys(procedural, where) == expected
    out = tmp_path / "selected"
    summary = run_select(procedural, where, out)
    assert summary.selected == len(expected)
    report = verify_dataset(out)
    assert report.ok and report.samples == len(expected), report.problems
    new_index = read_index(out / "index.parquet").set_index("key")
    old_index = kept.set_index("key")
    assert sorted(new_index.index) == expected
    for column in ("pixel_motion", "sharpness", "caption", "params_json", "duplicate_similarity"):
        assert new_index[column].equals(old_index.loc[expected, column]), column
    source = {s["__key__"]: s for s in iter_samples(procedural, decode=False)}
    for sample in iter_samples(out, decode=False):
        assert all(sample[m] == source[sample["__key__"]][m] for m in ("mp4", "json", "clip.npy"))
    document = read_dataset_json(out / "dataset.json")
    assert document["status"] == "complete" and document["parents"][0]["where"] == where
    with pytest.raises(UserError):
        run_select(procedural, where, out)                       # never overwrites


def test_select_that_matches_nothing_says_so(procedural, tmp_path):
    with pytest.raises(UserError, match="matches no kept clip"):
        run_select(procedural, "pixel_motion > 1e9", tmp_path / "none")
    assert not (tmp_path / "none").exists()


@pytest.mark.timeout(300)
def test_mix_is_deterministic_and_follows_the_weights(dashcam, procedural, tmp_path):
    sources = [parse_source(f"real={dashcam}:0.3"), parse_source(f"synthetic={procedural}:0.7")]
    first, second, other = tmp_path / "mix_a", tmp_path / "mix_b", tmp_path / "mix_c"
    summary = run_mix(sources, first, seed=7, total=10)
    assert [(n, c) for n, c, _ in summary.per_source] == [("real", 3), ("synthetic", 7)]
    report = verify_dataset(first)
    assert report.ok and report.samples == 10, report.problems
    domains = read_index(first / "index.parquet")["domain"].value_counts().to_dict()
    assert domains == {"dashcam": 3, "procedural": 7}
    run_mix(sources, second, seed=7, total=10)
    for name in ("shards/shard-000000.tar", "index.parquet"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    run_mix(sources, other, seed=8, total=10)
    assert set(read_index(other / "index.parquet")["key"]) != set(read_index(first / "index.parquet")["key"])
    order = [s["json"]["domain"] for s in iter_samples(first)]
    assert order[:4].count("dashcam") >= 1                          # sources are interleaved, not appended


def test_mix_plan_defaults_to_the_largest_mixture_without_repeats():
    available = {"a": [f"a{i}" for i in range(10)], "b": [f"b{i}" for i in range(100)]}
    sources = [MixSource("a", Path("."), 0.3), MixSource("b", Path("."), 0.7)]
    plan = plan_mix(available, sources, seed=0, total=None)
    assert (len(plan["a"]), len(plan["b"])) == (10, 23)
    assert plan == plan_mix(available, sources, seed=0, total=None)
    assert plan_mix(available, [sources[1], sources[0]], seed=0, total=None)["a"] == plan["a"]  # per-source draws
    with pytest.raises(UserError, match="needs 30 clips"):
        plan_mix(available, sources, seed=0, total=100)


@pytest.mark.parametrize("text", ["real", "real=/nonexistent:0.3", "Real=.:0.3", "real=.:0", "real=.:x"])
def test_mix_source_mistakes(text):
    with pytest.raises(UserError):
        parse_source(text)
