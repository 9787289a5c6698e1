//! Unit tests of the delivery state machine.
