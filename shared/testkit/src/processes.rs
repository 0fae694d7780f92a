//! The service binaries as separate processes, as deployed.
