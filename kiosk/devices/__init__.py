"""Drivers of the station's hardware: the card printer, the tray sensor board, the receipt
printer and the front panel (buttons, LEDs, buzzer, LCD).

Each opens its port with pyserial's serial_for_url or its pins through gpiozero's pin
factory, so a real device and a simulator look the same. Devices know nothing of the
station beyond the core's event vocabulary."""
