"""What MicroPython runs at boot on the tray board: the main loop of trayapp.py."""

import trayapp

trayapp.run()
