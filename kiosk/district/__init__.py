"""The district side: the client library, the durable router, `kiosk district` commands.

It imports only the contract from the station's side."""
