//! What moves notifications along without anyone asking: the dispatcher
//! (sends deliveries, retries, records attempts) and the timer (escalation
//! steps and scheduled drills).

pub mod dispatcher;
pub mod timer;

pub use dispatcher::Dispatcher;
pub use timer::Timer;
