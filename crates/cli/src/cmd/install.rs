//! `tagwarden install --export`: everything a cluster needs to run
//! tagwarden in place of Flux's image controllers, as YAML on stdout.

use anyhow::{Result, bail};
use clap::Args;
use std::io::Write;
use std::process::ExitCode;
use tagwarden_api::install::{FLUX_NAMESPACE, Install, default_image};

#[derive(Args)]
pub struct InstallArgs {
    /// Print the manifests on stdout (for `kubectl apply -f -` or Git).
    #[arg(long)]
    export: bool,
    /// Namespace of the controller, its ServiceAccount and its Lease.
    #[arg(short, long, default_value = FLUX_NAMESPACE)]
    namespace: String,
    /// Controller image [default: ghcr.io/tagwarden/tagwarden:v<version>].
    #[arg(long)]
    image: Option<String>,
    /// Also print the image.toolkit.fluxcd.io CRDs (leave out where Flux's
    /// CRDs are installed).
    #[arg(long)]
    crds: bool,
}

pub fn run(args: InstallArgs) -> Result<ExitCode> {
    if !args.export {
        bail!(
            "install needs --export: it prints the manifests for `kubectl apply -f -`; \
             applying them to a cluster itself comes with the controller"
        );
    }
    let image = args.image.unwrap_or_else(default_image);
    let install = Install::new(&args.namespace, &image, args.crds)?;
    let mut out = std::io::stdout().lock();
    out.write_all(install.to_yaml().as_bytes())?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
