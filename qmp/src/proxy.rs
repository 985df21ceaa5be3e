//! A multiplexing proxy for one QMP monitor (being written).
