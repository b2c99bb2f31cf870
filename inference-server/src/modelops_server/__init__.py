"""The inference server: serves one trained artifact over REST and the Open Inference Protocol v2."""

__version__ = "0.1.0"
