"""ppml — privacy-preserving linear-model inference with the Paillier cryptosystem."""

__version__ = "0.1.0"
