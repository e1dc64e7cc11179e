//! The conformance suite every [`crate::Store`] backend must pass.
