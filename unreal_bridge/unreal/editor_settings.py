"""Keep the editor ticking at full rate while it is a render server. Game thread only.

An editor that is not the foreground window throttles itself to a few ticks per second
(UEditorPerformanceSettings::bThrottleCPUWhenNotForeground, "Use Less CPU when in Background",
on by default), and the engine can idle completely when unfocused (`t.IdleWhenNotForeground`).
A headless render server is never the foreground window, and the bridge renders one frame per
tick, so either would cut throughput to a few frames per second.

Two layers, both needed on a real machine:
- launch flags (`LAUNCH_FLAGS`, used by launch_editor.py and docs/unreal.md), which apply
  before the first tick;
- `keep_editor_ticking`, which the backend calls on the game thread when it starts, so an editor
  started by hand (or with an older command line) is fixed too.
"""
from __future__ import annotations

from typing import Any

IDLE_CVAR = "t.IdleWhenNotForeground"
LAUNCH_FLAGS = (
    "-ini:EditorSettings:[/Script/UnrealEd.EditorPerformanceSettings]:bThrottleCPUWhenNotForeground=False",
    f'-ExecCmds="{IDLE_CVAR} 0"',
)


def keep_editor_ticking(unreal: Any) -> None:
    """Turn off background throttling and idling for this editor session (not saved to config)."""
    settings = unreal.get_default_object(unreal.EditorPerformanceSettings)
    settings.set_editor_property("throttle_cpu_when_not_foreground", False)  # literal: the API manifest test reads it
    world = unreal.get_editor_subsystem(unreal.UnrealEditorSubsystem).get_editor_world()
    unreal.SystemLibrary.execute_console_command(world, f"{IDLE_CVAR} 0")
