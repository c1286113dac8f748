"""The gateway's HTTP interface: the application factory (``app``), its rooms of handlers, the
authentication and the middleware every request passes, and the review console."""
