"""Device simulators on pseudo-terminals: card printer, tray sensor board, receipt printer."""
