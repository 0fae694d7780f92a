//! Cross-service flows and fault tests. The tests themselves are the
//! `[[test]]` targets beside this file; this library is empty on purpose.
