"""Hostile `--where` expressions and `mix` weights (issue 14): one line each, bounded time and memory."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from pipeline.curate.expression import MAX_DEPTH, evaluate, example_for
from pipeline.curate.mix import MixSource, parse_source, plan_mix
from contract.errors import UserError

pytestmark = pytest.mark.timeout(120)

FRAME = pd.DataFrame({"motion": [0.1, 0.5, np.nan], "sharpness": [10.0, 200.0, 50.0],
                      "caption": ["a road", "a forest", "a city"], "frames": [16, 32, 48]})


def _one_line(expression: str) -> str:
    with pytest.raises(UserError) as error:
        evaluate(expression, FRAME)
    line = error.value.one_line()
    assert "\n" not in line and line.startswith("--where ") and len(line) < 600
    return line


def test_deep_nesting_is_refused_not_a_recursion_error():
    assert "characters long; the limit is 2000" in _one_line("not " * 30000 + "frames")
    assert f"nests too deeply; the limit is {MAX_DEPTH} levels" in _one_line("not " * 200 + "frames")
    assert "(" in _one_line("(" * 500 + "frames" + ")" * 500)  # the parser's own limit: still one line
    assert evaluate("not " * 20 + "frames > 20", FRAME).tolist() == [False, True, True]  # an even count is fine


def test_text_repetition_is_refused_before_it_allocates():
    code = ("import resource; resource.setrlimit(resource.RLIMIT_AS, (1500 << 20, 1500 << 20))\n"
            "import pandas as pd\nfrom pipeline.curate.expression import evaluate\nfrom contract.errors import UserError\n"
            "try:\n    evaluate(\"'x' * 3000000000 == caption\", pd.DataFrame({'caption': ['a']}))\n"
            "except UserError as error:\n    print(error.one_line())\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "works on numbers only" in result.stdout, result.stderr[-1500:]
    assert "works on numbers only" in _one_line("caption * 3 == 'x'")
    assert evaluate("caption + '!' == 'a road!'", FRAME).tolist() == [True, False, False]  # concatenation is bounded


def test_evaluation_errors_are_one_line():
    assert "ZeroDivisionError" in _one_line("frames > 0 or 1/0 > 0")
    assert "OverflowError" in _one_line("frames * 99999999999999999999999999 > 0")
    assert evaluate("frames / 0 > 1", FRAME).tolist() == [True, True, True]  # a column divides to inf, as pandas does


def test_unknown_column_gets_a_did_you_mean_and_a_real_example():
    line = _one_line("sharpnes > 100")
    assert "did you mean 'sharpness'?" in line
    assert "aesthetic" not in line  # this index has no aesthetic column: the example must not name it
    assert example_for(["sharpness", "motion"]) == "motion > 0.3 and sharpness > 0.3"
    assert example_for(["domain", "frames"]) == "frames >= 16"
    assert example_for(["pixel_motion", "sharpness"]) == "pixel_motion > 0.01 and sharpness > 0.3"


@pytest.mark.parametrize("weight", ["1e309", "1e-400", "0", "0.0"])
def test_mix_refuses_non_finite_or_non_positive_weights(tmp_path, weight):
    with pytest.raises(UserError, match="must be a finite number > 0"):
        parse_source(f"a={tmp_path}:{weight}")


def test_mix_refuses_weights_too_far_apart(tmp_path):
    sources = [MixSource("a", tmp_path, 1e308), MixSource("b", tmp_path, 1e308)]
    with pytest.raises(UserError, match="too far apart"):
        plan_mix({"a": ["k1"], "b": ["k2"]}, sources, seed=0, total=None)


def test_mix_cli_with_an_infinite_weight_is_one_red_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", "mix", "--source", f"a={tmp_path}:1e309", "--out", str(tmp_path / "o")],
                            capture_output=True, text=True, timeout=120)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and "finite" in lines[0], result.stderr[-1500:]
