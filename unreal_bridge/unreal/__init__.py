"""The Unreal Engine render backend: Python that runs inside the Unreal Editor (UE 5.4+, Python 3.11).

Nothing here imports `unreal` at import time; the module is handed in (`UnrealBackend(unreal,
executor)`), which is what lets the tests drive it with the fake in tests/fake_unreal.

- `startup.py`: the `-ExecutePythonScript` entry point (server + tick callback)
- `game_thread.py`: gRPC threads enqueue, the editor tick drains
- `backend.py`: `UnrealBackend`, the RenderBackend (frame pacing, resume, errors)
- `scene.py`: level, CineCameraActor + SceneCapture2D rig, capture
- `readback.py`: render targets exported once per pass (PNG / half-float EXR) and decoded
- `editor_settings.py`, `launch_editor.py`: an unthrottled headless editor and its command line
- `python_env.py`, `requirements.py`: the editor's Python, protobuf and the hashed requirements
- `api_manifest.json`: every engine name used, with versions and a reference (test-enforced)
- `environment.py`: time of day and weather onto sun, sky, fog, clouds
- `coords.py`: OpenCV camera-to-world (metres) <-> Unreal transforms (cm, left-handed)
- `plan.py`: what a ResolvedClip must satisfy for Unreal, checked before touching the editor
- `mrq.py`: Movie Render Queue (cinematic path), asynchronous, reports through delegates
- `install_plugin.py`: copy the WorldloomBridge plugin into a project
"""
from __future__ import annotations

__all__ = ["UnrealBackend", "UnrealBackendConfig", "GameThreadExecutor"]


def __getattr__(name: str):
    if name in ("UnrealBackend", "UnrealBackendConfig"):
        from unreal_bridge.unreal import backend

        return getattr(backend, name)
    if name == "GameThreadExecutor":
        from unreal_bridge.unreal.game_thread import GameThreadExecutor

        return GameThreadExecutor
    raise AttributeError(name)
