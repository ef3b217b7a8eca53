"""Generated protocol package; see unreal_bridge/protos/generate.py."""
