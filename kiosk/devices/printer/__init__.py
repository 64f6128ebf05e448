"""Card printer drivers (card-printer.md): one family per sub-package."""
