//! Test support: start an r8s server (binary or in-process), kubectl helpers, fixtures
