"""``earwitness export``: caption events (and alerts) from Kafka into Parquet files, exactly once."""
