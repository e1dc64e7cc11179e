//! Patches as the Kubernetes API server applies them: JSON patch, merge patch, strategic merge patch, server-side apply with managed fields
