//! The subcommands.

pub mod check;
pub mod control;
pub mod probe;
pub mod serve;
