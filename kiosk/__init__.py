"""E-KTP card print station: the on-device service and its simulators."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kiosk")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+src"
