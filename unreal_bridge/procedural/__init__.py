"""The procedural render backend: PyBullet worlds rendered with TinyRenderer (docs/procedural-renderer.md)."""
from unreal_bridge.procedural.backend import ProceduralBackend

__all__ = ["ProceduralBackend"]
