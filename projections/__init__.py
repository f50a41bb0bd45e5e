"""Read models built from events: Arrow tables in memory, DuckDB for queries, Parquet checkpoints."""
