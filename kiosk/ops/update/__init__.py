"""Station releases: signed bundles, ``kiosk update``, the switch between releases and its rollback.

docs/releases.md is the guide. The parts:
  bundle.py      the bundle file: manifest, Ed25519 signature, payload; verify and unpack
  platform.py    what this station can run (the interpreter's ELF machine and class, its version)
  layout.py      /opt/kiosk/releases/VERSION, the ``current`` symlink, the switch journal
  spoolcheck.py  the spool's schema version and whether a card is in the printer (read-only)
  supervisor.py  the unit: systemctl, or a small supervisor of real processes (tests)
  health.py      the health file a running release writes, and the judgement of it
  updater.py     the steps of an update, its rollback and the recovery of a half-done switch
  cli.py         ``kiosk update``
"""
