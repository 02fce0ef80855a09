//! The subcommands.

pub mod check;
pub mod reload;
pub mod serve;
