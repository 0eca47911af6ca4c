//! Schema migrations: one module per schema step, run in order on open.
