//! The agent's HTTPS server (port 10250): container logs, exec, attach and port-forward, proxied to
//! by the API server.
