"""Pickle-free checkpoints and exports without Ray: save -> restore, export -> sample from the
export alone, and the planted-pickle drill (every file of a checkpoint replaced by a payload that
would create a marker file if anything unpickled it)."""
from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from model.configs import get_config
from model.vae import VideoVAE
from model.world_model import WorldModel
from contract.errors import UserError
from training import checkpoint as ckpt
from training.export import export_checkpoint, load_export

OVERRIDES = {"frames": 5, "fps": 8.0, "height": 32, "width": 32}
WORLDLOOM = Path(sys.executable).parent / "worldloom"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Step(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net


def _parts(attention: str = "diff_v1"):
    torch.manual_seed(0)
    step = Step(WorldModel(get_config("tiny", attention=attention, **OVERRIDES)))
    trainable = [(n, p) for n, p in step.named_parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([p for _, p in trainable], lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 ** s)
    return step, trainable, optimizer, scheduler, ckpt.EMA(trainable, 0.9)


def _train(step, trainable, optimizer, scheduler, ema, steps: int) -> None:
    for _ in range(steps):
        loss = sum(p.float().square().mean() for _, p in trainable)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        ema.update()


def _save(folder: Path, attention: str = "diff_v1") -> dict:
    step, trainable, optimizer, scheduler, ema = _parts(attention)
    _train(step, trainable, optimizer, scheduler, ema, 2)
    torch.manual_seed(1)
    vae_state = VideoVAE(get_config("tiny").vae).state_dict()
    ckpt.save(folder, step=2, model=step, ema=ema, optimizer=optimizer, scheduler=scheduler,
              data_position={"batches": 2}, generator=torch.Generator().manual_seed(3), rank=0,
              meta={"stage": "world", "model": "tiny", "model_overrides": OVERRIDES, "mlflow_run_id": None},
              vae_state=vae_state)
    return {"model": {k: v.clone() for k, v in step.state_dict().items()}, "ema": dict(ema.shadow),
            "optimizer": optimizer.state_dict(), "vae": vae_state}


@pytest.fixture(scope="module")
def world_checkpoint(tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("ckpt") / "checkpoint_00000002"
    folder.mkdir()
    return folder, _save(folder)


def test_checkpoint_holds_only_json_and_safetensors(world_checkpoint) -> None:
    folder, _ = world_checkpoint
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert "state.json" in files and "rng_rank0.json" in files
    assert all(f.endswith((".json", ".safetensors")) for f in files), files
    state = json.loads((folder / "state.json").read_text())
    assert state["format"] == ckpt.FORMAT and state["step"] == 2 and state["has_vae"]


def test_restore_brings_back_weights_moments_schedule_and_rng(world_checkpoint) -> None:
    folder, saved = world_checkpoint
    step, trainable, optimizer, scheduler, ema = _parts()  # fresh: different from the saved state
    generator = torch.Generator()
    state = ckpt.restore(folder, model=step, ema=ema, optimizer=optimizer, scheduler=scheduler,
                         generator=generator, rank=0)
    assert state.step == 2 and state.data_position == {"batches": 2}
    for key, value in step.state_dict().items():
        torch.testing.assert_close(value, saved["model"][key], rtol=0, atol=0)
    for key, value in ema.shadow.items():
        torch.testing.assert_close(value, saved["ema"][key], rtol=0, atol=0)
    assert ema.updates == 2 and scheduler.last_epoch == 2
    restored = optimizer.state_dict()["state"]
    for index, moments in saved["optimizer"]["state"].items():
        assert float(restored[index]["step"]) == 2.0
        torch.testing.assert_close(restored[index]["exp_avg_sq"], moments["exp_avg_sq"], rtol=0, atol=0)
    assert torch.equal(generator.get_state(), torch.Generator().manual_seed(3).get_state())


def test_export_then_sample_from_the_export_alone(world_checkpoint, tmp_path: Path) -> None:
    folder, saved = world_checkpoint
    source = tmp_path / "run" / folder.name
    shutil.copytree(folder, source)
    out = tmp_path / "export"
    completed = subprocess.run([str(WORLDLOOM), "export", str(source.parent), "--out", str(out)],
                               capture_output=True, text=True, timeout=180)
    assert completed.returncode == 0, completed.stderr
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors", "vae.safetensors"]
    loaded = load_export(out)
    assert loaded.state["step"] == 2 and loaded.state["model_overrides"]["attention"] == "diff_v1"
    for key, value in saved["ema"].items():  # EMA weights, not the raw ones
        torch.testing.assert_close(loaded.weights[key], value, rtol=0, atol=0)
    shutil.rmtree(source.parent)  # the export alone from here on

    video = tmp_path / "rollout.mp4"
    completed = subprocess.run([str(WORLDLOOM), "sample", str(out), "--prompt", "a street", "--seconds", "1",
                                "--steps", "1", "--actions", "w-16,lw-8,w-8", "--out", str(video)],
                               capture_output=True, text=True, timeout=180)
    assert completed.returncode == 0, completed.stderr
    assert "first 9" in completed.stderr  # 32 action frames cut to the 9-frame rollout, said so
    import av

    with av.open(str(video)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 9


def test_v2_weights_round_trip_through_an_export(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoint_00000002"
    folder.mkdir()
    _save(folder, attention="diff_v2")
    export_checkpoint(folder, tmp_path / "export")
    loaded = ckpt.load_for_inference(tmp_path / "export")
    assert loaded.state["model_overrides"]["attention"] == "diff_v2"
    assert ckpt.latest_checkpoint(tmp_path / "export") == tmp_path / "export"  # usable as vae_checkpoint too
    from training.sample import build_models

    world, _, config = build_models(loaded)
    assert config.dit.attention == "diff_v2"


class _Payload:
    """Unpickling this creates the marker file: the proof that something ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _plant(folder: Path, marker: Path) -> list[Path]:
    payload = pickle.dumps(_Payload(marker))
    planted = [p for p in folder.rglob("*") if p.is_file()]
    for path in planted:
        path.write_bytes(payload)
    return planted


@pytest.mark.parametrize("target", ["state.json", "rng", "shards", "every"])
def test_planted_pickle_payloads_are_refused_and_never_run(world_checkpoint, tmp_path: Path, target: str) -> None:
    folder, _ = world_checkpoint
    copy = tmp_path / "checkpoint_00000002"
    shutil.copytree(folder, copy)
    marker = tmp_path / "PWNED"
    payload = pickle.dumps(_Payload(marker))
    pickle.loads(payload)  # the payload is live: it does create the marker when unpickled
    assert marker.exists()
    marker.unlink()
    if target == "every":
        assert len(_plant(copy, marker)) >= 4
    else:
        paths = {"state.json": [copy / "state.json"], "rng": [copy / "rng_rank0.json"],
                 "shards": sorted((copy / "shards").glob("*.safetensors"))}[target]
        for path in paths:
            path.write_bytes(payload)
    step, _, optimizer, scheduler, ema = _parts()
    with pytest.raises(UserError):
        ckpt.restore(copy, model=step, ema=ema, optimizer=optimizer, scheduler=scheduler,
                     generator=torch.Generator(), rank=0)
    if target != "rng":  # the RNG file is read by restore only
        with pytest.raises(UserError):
            ckpt.load_for_inference(copy)
        with pytest.raises(UserError):
            export_checkpoint(copy, tmp_path / "export")
    assert not marker.exists()


def test_pickle_era_files_and_tampered_exports_are_refused_in_one_line(world_checkpoint, tmp_path: Path) -> None:
    folder, _ = world_checkpoint
    copy = tmp_path / "checkpoint_00000002"
    shutil.copytree(folder, copy)
    marker = tmp_path / "PWNED"
    (copy / "scheduler.pt").write_bytes(pickle.dumps(_Payload(marker)))
    completed = subprocess.run([str(WORLDLOOM), "export", str(copy), "--out", str(tmp_path / "e")],
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 2 and "scheduler.pt" in completed.stderr and "pickle" in completed.stderr
    assert completed.stderr.strip().count("\n") == 0 and "Traceback" not in completed.stderr
    assert not marker.exists()

    (copy / "scheduler.pt").unlink()
    export = export_checkpoint(copy, tmp_path / "export").out
    (export / "vae.safetensors").write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(UserError, match="sha256"):
        load_export(export)
    assert not marker.exists()


def test_no_unsafe_load_remains_in_the_repository() -> None:
    root = Path(__file__).resolve().parents[1]
    offenders = []
    for path in (*root.glob("training/**/*.py"), *root.glob("model/**/*.py"), *root.glob("pipeline/**/*.py"),
                 *root.glob("benchmarks/*.py")):
        text = path.read_text()
        if "weights_only=False" in text or "pickle.load" in text:
            offenders.append(str(path.relative_to(root)))
    assert not offenders
