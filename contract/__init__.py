"""The contracts between worldloom's parts, with one owner each (docs/architecture.md, "Layering").

`contract` is the bottom layer: it imports only the standard library, numpy, pydantic and
PyYAML, never another worldloom package, so every part (and the Unreal editor plugin) can
import it without pulling in the data engine, Ray or torch.

- `contract.errors`: `UserError`, the user-facing error (one line, exit 2).
- `contract.manifest`: the manifest schema, loader, sub-seeds, randomisation, resolution to
  ResolvedClip dicts and their hash, action strings and policies, the action -> pose rollout.
"""
