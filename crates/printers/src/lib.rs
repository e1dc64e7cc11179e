//! Server-side Table printing with the upstream default columns for every built-in kind
