//! A PostgreSQL server of the test's own (`initdb` on a free port).
