//! PostgreSQL restarted under load (an instance the test starts itself).
