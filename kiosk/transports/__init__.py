"""pyserial URL handlers of our own, found by ``serial.serial_for_url``.

``usblp:///dev/usb/lp0`` opens a USB printer-class device (the kernel's usblp
driver, which Evolis printers on USB use) as a plain byte stream: it is not a
tty, so pyserial's own serial class cannot configure it. Importing
`kiosk.transports.register` adds this package to pyserial's search list.
"""
