"""Run by the editor at start-up for every enabled plugin with a Content/Python folder.

Starts the worldloom render server only when asked (WORLDLOOM_RENDER_SERVER=1), so enabling the
plugin in a project never opens a port by surprise. The headless route is
`-ExecutePythonScript=<...>/startup.py` instead; both end in `unreal_bridge.unreal.startup.main`.
"""
import os

if os.environ.get("WORLDLOOM_RENDER_SERVER") == "1":
    import unreal

    try:
        from unreal_bridge.unreal import startup

        startup.main([])
    except Exception as error:  # the editor must still open; the log says what is missing
        unreal.log_error(f"worldloom: could not start the render server: {error}")
