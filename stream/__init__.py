"""The analyzer: Kafka frames in, windows through the vLLM captioner, caption events out."""
