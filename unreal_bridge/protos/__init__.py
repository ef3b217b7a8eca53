"""The render protocol: `worldloom/render/v1/render.proto` and its committed generated code (see generate.py)."""
