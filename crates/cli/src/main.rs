//! The `tagwarden` binary: parses flags, calls the libraries, prints.

mod cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Keep container image references in Git up to date: Flux image automation,
/// rebuilt. Reads the Flux manifests you already have.
#[derive(Parser)]
#[command(name = "tagwarden", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Work with ImagePolicies offline.
    Policy {
        #[command(subcommand)]
        command: cmd::policy::PolicyCommand,
    },
    /// List an image's tags as an ImageRepository scan sees them.
    Scan(cmd::scan::ScanArgs),
    /// Set the values marked with $imagepolicy to policies' latest images,
    /// changing no other byte.
    Update(cmd::update::UpdateArgs),
    /// The getting-started guide's podinfo scenario on this machine: a local
    /// registry and Git repository, one run, the commit and its diff.
    Demo(cmd::demo::DemoArgs),
    /// Reconcile Flux image automation manifests: scan, select, update Git.
    Run(cmd::run::RunArgs),
    /// Run inside a Kubernetes cluster on Flux's image CRDs, in place of
    /// Flux's image-reflector and image-automation controllers.
    Controller(cmd::controller::ControllerArgs),
    /// Generate Flux image automation manifests, as `flux create image … --export`.
    Create(cmd::create::CreateArgs),
    /// Print the manifests that run tagwarden in a cluster (`--export`).
    Install(cmd::install::InstallArgs),
    /// Show objects and their status, as `flux get image …`.
    Get {
        #[command(subcommand)]
        group: cmd::get::GetGroup,
    },
    /// Stop reconciling an object until resumed.
    Suspend {
        #[command(subcommand)]
        group: cmd::get::ActGroup,
    },
    /// Reconcile a suspended object again.
    Resume {
        #[command(subcommand)]
        group: cmd::get::ActGroup,
    },
    /// Reconcile an object now (running daemon) and wait for the result.
    Reconcile {
        #[command(subcommand)]
        group: cmd::get::ActGroup,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Policy { command } => cmd::policy::run(command),
        Command::Scan(args) => cmd::scan::run(args),
        Command::Update(args) => cmd::update::run(args),
        Command::Run(args) => cmd::run::run(args),
        Command::Controller(args) => cmd::controller::run(args),
        Command::Demo(args) => cmd::demo::run(args),
        Command::Create(args) => cmd::create::run(args),
        Command::Install(args) => cmd::install::run(args),
        Command::Get { group } => cmd::get::get(group),
        Command::Suspend { group } => cmd::get::suspend(group, true),
        Command::Resume { group } => cmd::get::suspend(group, false),
        Command::Reconcile { group } => cmd::get::reconcile(group),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
