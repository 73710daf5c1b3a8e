"""Scaling Lab, training half: model families, data, the training loop and the run record."""

__version__ = "0.1.0"
