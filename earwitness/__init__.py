"""earwitness: real-time audio captioning and alerting on Kafka.

The packages follow the data path: ``windowing`` (frames → windows, pure), ``stream`` (Kafka in
and out, the vLLM engine, the loop) and ``sinks`` (captions → alerts). This package holds what
they share: the exception tree and the command line.
"""

__version__ = "0.1.0"
