//! The Kubernetes API server: generic registry, per-kind strategies, watch cache, discovery, OpenAPI, tables, patch/apply
