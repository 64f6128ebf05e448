"""The tray board's main loop: sensors → protocol → USB serial, and commands back.

``TrayApp`` holds the logic and is driven by ``feed`` (bytes from the station)
and ``step`` (time passing), so the project's tests run it on the host; ``run``
is the thin loop around it on the board (USB CDC stdin/stdout, watchdog).
"""

import trayproto

FW_VERSION = "1.0.0"
CAL_FILE = "calibration.txt"
WATCHDOG_MS = 4000  # a hung loop resets the board; $PKSKB then says WDT
LOOP_SLEEP_MS = 2


class TrayApp:
    """Glue between a board (``sample``, ``reading``, ``reset_cause``), the protocol and a writer.

    Usage::

        app = TrayApp(board, TrayProtocol(FW_VERSION, store), write)
        app.start()                  # $PKSKB
        app.feed("$PKSKC,PING*7C\\r\\n")
        app.step(now_ms)             # samples; a frame when one is due
    """

    def __init__(self, board, protocol, write):
        self.board = board
        self.protocol = protocol
        self.write = write
        self._line = ""
        self._overflow = False

    def start(self):
        self.write(self.protocol.boot(self.board.reset_cause()))

    def feed(self, text):
        for char in text:
            if char == "\n":
                if not self._overflow:
                    self._answer(self._line)
                self._line, self._overflow = "", False
            elif len(self._line) >= trayproto.MAX_SENTENCE:
                self._line, self._overflow = "", True  # drop the rest of this line
            elif not self._overflow:
                self._line += char

    def step(self, now_ms):
        self.board.sample(now_ms)
        frame = self.protocol.poll(now_ms, self.board.reading())
        if frame is not None:
            self.write(frame)

    def _answer(self, line):
        reply = self.protocol.handle(line, self.board.reading())
        if reply is not None:
            self.write(reply)


class MonotonicMs:
    """Milliseconds since start that never wrap (``time.ticks_ms`` wraps)."""

    def __init__(self, time_module):
        self._time = time_module
        self._last = time_module.ticks_ms()
        self._total = 0

    def now(self):
        current = self._time.ticks_ms()
        self._total += self._time.ticks_diff(current, self._last)
        self._last = current
        return self._total


def run():
    """Run forever on the board (called by main.py), unless the maintenance jumper is fitted."""
    import select
    import sys
    import time

    import machine
    import trayboard

    if trayboard.maintenance_jumper():
        print("tray board: maintenance jumper fitted, protocol and watchdog not started")
        return
    board = trayboard.Board()
    protocol = trayproto.TrayProtocol(FW_VERSION, trayproto.CalibrationStore(CAL_FILE))
    # the raw buffer: sys.stdout.write would turn our CRLF into CR CR LF
    app = TrayApp(board, protocol, sys.stdout.buffer.write)
    incoming = select.poll()
    incoming.register(sys.stdin, select.POLLIN)
    watchdog = machine.WDT(timeout=WATCHDOG_MS)
    clock = MonotonicMs(time)
    app.start()
    while True:
        watchdog.feed()
        while incoming.poll(0):
            app.feed(sys.stdin.read(1))  # MicroPython's text stdin turns CR into LF: harmless
        app.step(clock.now())
        time.sleep_ms(LOOP_SLEEP_MS)
