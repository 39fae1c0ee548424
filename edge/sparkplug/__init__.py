"""Sparkplug B 3.0: the device as an edge node for Ignition-class SCADA, beside the plain JSON topics.

    publisher.py      SparkplugPublisher: the Publisher (and frame observer) on its own MQTT connection
    session.py        SparkplugSession: bdSeq, seq, births, the NDEATH, held data made historical
    metrics.py        topics, the metric catalogue (names, aliases, datatypes) and the node's view
    host.py           the primary host application's STATE
    payloads.py       protobuf encoding/decoding (the only user of the generated module)
    sparkplug_b.proto our own statement of the Sparkplug B payload wire format; sparkplug_b_pb2.py(i)
                      is generated from it (see README.md here)

Why our own code on top of our own transport: no Python Sparkplug library on the package index works
with paho-mqtt 2 (pysparkplug and mqtt-spb-wrapper pin paho 1.x), and the transport already gives us
the durable outbox, backoff and one connection per thread that held data needs.
"""
