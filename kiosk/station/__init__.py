"""The on-device service: the core's decisions (core/) and the shell that joins them to the world.

The shell is thin: `loop` (the one event queue and the commit before every action), `spool`
(SQLite), `config`, `mqttlink` (paho) and `printing` (the printer thread)."""
