//! A client that reconnects (being written).
