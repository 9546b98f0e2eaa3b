"""earwitness: real-time audio captioning and alerting on Kafka.

The packages follow the data path: ``ingest`` (audio onto the frames topic), ``windowing``
(frames → windows, pure), ``stream`` (the analyzer: Kafka in and out, the vLLM engine, the
loop) and ``sinks`` (captions → alerts). This package holds what they share: the command line,
the caption-event contract, Kafka plumbing, settings loading and the exception tree.
"""

__version__ = "0.1.0"
