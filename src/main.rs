//! anyns: the anycast nameserver.

mod cli;
mod config;
mod routing;
mod status;
mod transfers;
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
    /// Ask the running node to re-read its configuration and zones.
    Reload(ControlArgs),
    /// Show the running node's state: identity, zones, health, routing intent.
    Status {
        #[command(flatten)]
        control: ControlArgs,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// Drain the node: de-prefer, withdraw, wait until queries stop (it keeps serving).
    Drain(ControlArgs),
    /// Cancel a drain: announce again once healthy.
    Undrain(ControlArgs),
    /// Maintenance mode: keep serving, announce de-preferred.
    Maintenance {
        #[arg(value_enum)]
        state: OnOff,
        #[command(flatten)]
        control: ControlArgs,
    },
    /// Ask the sites of the service from outside.
    Probe {
        #[command(subcommand)]
        what: ProbeCommand,
    },
}

#[derive(Subcommand)]
enum ProbeCommand {
    /// Ask every site for each zone's SOA and print the serial skew per zone; exit code 1 when
    /// the serials differ or a site does not answer.
    Consistency {
        /// The sites' unicast addresses (default: `[probe] sites` of the config).
        #[arg(long, value_delimiter = ',', value_name = "ADDR:PORT,...")]
        sites: Vec<SocketAddr>,
        /// A zone to compare; repeat for several (default: the config's zones).
        #[arg(long)]
        zone: Vec<String>,
        /// Node configuration file, for its sites and zones.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// How long to wait for each answer.
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum OnOff {
    On,
    Off,
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
    /// Address of the control API (default 127.0.0.1:8053).
    #[arg(long, value_name = "ADDR:PORT")]
    control: Option<SocketAddr>,
    /// Lab only: let the control API make the data plane drop every query.
    #[arg(long, hide = true)]
    enable_fault_injection: bool,
}

#[derive(Args, Clone)]
struct ControlArgs {
    /// Node configuration file naming the control API's address.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Address of the running node's control API (default 127.0.0.1:8053).
    #[arg(long, value_name = "ADDR:PORT")]
    control: Option<SocketAddr>,
}

impl ControlArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            config: self.config.clone(),
            control: self.control,
            ..Overrides::default()
        }
    }
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
            control: self.control,
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
        Command::Serve(args) => cli::serve::run(&args.overrides(), args.enable_fault_injection),
        Command::Check(args) => cli::check::run(&args.overrides()),
        Command::Reload(args) => cli::control::run(&args.overrides(), "POST", "/reload"),
        Command::Status { control, json } => cli::control::status(&control.overrides(), json),
        Command::Drain(args) => cli::control::run(&args.overrides(), "POST", "/drain"),
        Command::Undrain(args) => cli::control::run(&args.overrides(), "POST", "/undrain"),
        Command::Maintenance { state, control } => {
            let path = match state {
                OnOff::On => "/maintenance/on",
                OnOff::Off => "/maintenance/off",
            };
            cli::control::run(&control.overrides(), "POST", path)
        }
        Command::Probe {
            what:
                ProbeCommand::Consistency {
                    sites,
                    zone,
                    config,
                    timeout_ms,
                },
        } => cli::probe::consistency(
            &Overrides {
                config,
                ..Overrides::default()
            },
            &sites,
            &zone,
            std::time::Duration::from_millis(timeout_ms),
        ),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("anyns: {e:#}");
            ExitCode::from(2)
        }
    }
}
