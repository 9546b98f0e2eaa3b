"""``earwitness export``: caption events (and alerts) from Kafka into Parquet, exactly once."""
