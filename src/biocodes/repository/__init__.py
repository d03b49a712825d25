"""The repository layer: config, scan, shards, catalogue merge, history,
duplicates, verify and similar, the report."""
