//! anyns: the anycast nameserver.

mod cli;
mod config;
mod zones;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::Overrides;

#[derive(Parser)]
#[command(name = "anyns", version, about = "Anycast authoritative DNS server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve DNS in the foreground. With no options: the example zone on 127.0.0.1:5300.
    Serve(NodeArgs),
    /// Check the configuration and every zone without serving; exit code 1 on any error.
    Check(NodeArgs),
    /// Ask the running server to re-read its configuration and zones.
    Reload(ControlArgs),
}

#[derive(Args, Clone)]
struct NodeArgs {
    /// Node configuration file (TOML).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Address to serve on (UDP and TCP); repeat for several. Replaces the config's list.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Vec<SocketAddr>,
    /// A zone from a master file; repeat for several. Added to the config's zones.
    #[arg(long, value_name = "NAME=PATH")]
    zone: Vec<String>,
    /// UDP worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Site name of this node's identity.
    #[arg(long)]
    site: Option<String>,
    /// Node name of this node's identity (default: the host name).
    #[arg(long)]
    node: Option<String>,
    /// Control socket for `anyns reload`.
    #[arg(long, value_name = "PATH")]
    control_socket: Option<PathBuf>,
}

#[derive(Args, Clone)]
struct ControlArgs {
    /// Node configuration file naming the control socket.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// The control socket of the running server.
    #[arg(long, value_name = "PATH")]
    control_socket: Option<PathBuf>,
}

impl NodeArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            config: self.config.clone(),
            listen: self.listen.clone(),
            zones: self.zone.clone(),
            threads: self.threads,
            site: self.site.clone(),
            node: self.node.clone(),
            control_socket: self.control_socket.clone(),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let result = match cli.command {
        Command::Serve(args) => cli::serve::run(&args.overrides()),
        Command::Check(args) => cli::check::run(&args.overrides()),
        Command::Reload(args) => cli::reload::run(&Overrides {
            config: args.config,
            control_socket: args.control_socket,
            ..Overrides::default()
        }),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("anyns: {e:#}");
            ExitCode::from(2)
        }
    }
}
