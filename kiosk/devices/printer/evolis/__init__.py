"""The Evolis command language: framing (protocol), panel encoding (panels), the driver."""
