"""Alarm acknowledgement per region of interest, in the style of ISA-18.2. Pure: values in, values out.

    logic.py   AlarmState, Alarm (one ROI's alarm record) and its transitions
    store.py   AlarmStore: the records in the state directory, written atomically and only on change

The alarm condition is the flow level ``alert``. The daemon owns the records; operators acknowledge
through a command (plain JSON ``ack``, Sparkplug B DCMD ``Alarm/Acknowledge``)::

    normal --alert--> active_unacknowledged --ack--> active_acknowledged --clears--> normal
                            |                                  ^
                          clears                            (alert again)
                            v
                    returned_unacknowledged --ack--> normal
                            \\--alert--> active_unacknowledged

A level the device cannot judge (``unknown``) neither raises nor clears an alarm.
"""

from edge.alarms.logic import AcknowledgeRefused, Alarm, AlarmState, condition_of

__all__ = ["AcknowledgeRefused", "Alarm", "AlarmState", "condition_of"]
