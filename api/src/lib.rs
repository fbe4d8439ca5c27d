//! The HTTP API (see issue 4).
