"""Running a station for years: install, doctor, systemd, logging, PKI, status, memory."""
