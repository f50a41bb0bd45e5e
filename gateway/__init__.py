"""The edge of the system: HTTP/WebSocket API, auth, and the `sq` command line."""
