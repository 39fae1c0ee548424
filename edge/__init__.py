"""On-device half: camera frames -> int8 interpreter -> debounced alert levels -> MQTT.

Never imports TensorFlow (except as the last-resort runtime when explicitly configured).
"""

__version__ = "0.1.0"
