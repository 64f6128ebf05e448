"""The blank-card tray's sensor board (tray-sensor.md): its sentences and its serial driver."""
