"""Workstation side: simulate datasets, train the conveyor CNN, quantize it to int8 and gate it."""

__version__ = "0.1.0"
