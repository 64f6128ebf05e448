"""Make ``serial.serial_for_url`` find the handlers in `kiosk.transports`."""

import serial

if "kiosk.transports" not in serial.protocol_handler_packages:
    serial.protocol_handler_packages.append("kiosk.transports")
