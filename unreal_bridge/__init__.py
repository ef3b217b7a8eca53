"""worldloom unreal_bridge package."""
