"""Engine tests: the CPU build of vLLM with the tiny test model (markers engine, slow)."""
