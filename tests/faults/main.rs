//! The fault-injection suite: each test starts its own NATS server (and,
//! where it kills it, its own database or service processes), breaks
//! something the way production breaks, and a checker compares what happened
//! with what must have happened. The promise under test: a crash or broker
//! restart delays work; it never loses or doubles it.
//!
//! Each test prints its figures (drain times, redeliveries) for the run's log.

#![allow(clippy::print_stdout)]

mod cold_restart;
mod consumer_kill;
mod crash_before_publish;
mod database_restart;
mod jetstream_wipe;
mod lost_answer;
mod nats_outage;
mod world;
