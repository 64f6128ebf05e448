"""The station's decisions, sans-I/O: events in, actions out, one state object.

No threads, no devices, no broker: the core is tested by feeding it events and reading
back its actions and spool rows. `events` is its vocabulary (the only module of the
station that devices may import); `state` holds the one mutable state and the job
lifecycle table; `machine` routes events; `commands`, `desk`, `outbound` and `stock`
are its parts."""
