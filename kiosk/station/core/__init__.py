"""The station's decisions, sans-I/O: events in, actions out, one state object.

No threads, no devices, no broker, no database: the core is tested by feeding it events
and reading back its actions and stored rows. What it keeps goes through `store.Store`,
an interface the core owns (the SQLite spool is its adapter, and the core's unit tests
use one in memory). `events` is its vocabulary (the only module of the
station that devices may import); `state` holds the one mutable state and the job
lifecycle table; `machine` routes events; `ledger` books every card; `commands` and
`desk` see the core through `parts.CoreAccess`; `outbound` and `stock` are its parts."""
