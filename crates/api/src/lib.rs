//! API machinery without I/O: field errors, Status, label and field selectors, defaulting and validation per kind
