"""What station and district share: the record and its checks, signatures, the MQTT set-up.

Imports no other part of kiosk (checked by the layering contracts in pyproject.toml)."""
