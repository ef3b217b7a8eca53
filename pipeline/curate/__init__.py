"""Curate real footage into shards with the same schema as generated data.

Stages (one module each): inputs -> probe -> shots -> plan -> transcode -> scores -> captions
-> dedupe -> shard writer; `select` and `mix` re-shard from the Parquet index.
"""
