"""Test helpers shared across tiers: the local broker and small Kafka utilities."""
