//! What `tagwarden demo` needs to run the getting-started guide on one
//! machine: Debian's `docker-registry` on 127.0.0.1 (plain HTTP, no auth), a
//! bare Git repository seeded with files, temporary directories and the
//! guide's manifests. The test harness (tagwarden-testkit) builds its auth,
//! TLS and fault-injecting servers on these.

mod git;
mod http;
mod registry;
pub mod seed;

pub use git::{BareRepo, git, require_git};
pub use http::{Response, http};
pub use registry::Registry;

use std::net::TcpListener;
use std::path::{Path, PathBuf};

/// Why the sandbox could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot start {program}: {reason}; install it with: sudo apt-get install {package}")]
    NotInstalled {
        program: String,
        package: &'static str,
        reason: std::io::Error,
    },
    #[error("docker-registry on port {port} did not come up")]
    NotReady { port: u16 },
    #[error("writing {path}: {reason}")]
    Write {
        path: PathBuf,
        reason: std::io::Error,
    },
    #[error("{what}: {reason}")]
    Http {
        what: String,
        reason: std::io::Error,
    },
    #[error("{what}: status {status}, expected {expected}: {body}")]
    Status {
        what: String,
        status: u16,
        expected: u16,
        body: String,
    },
    #[error("{what}: no location header in the registry's answer")]
    NoLocation { what: String },
    #[error("git {args}: {stderr}")]
    Git { args: String, stderr: String },
}

/// A temporary directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates the directory, panicking if the system's temp dir is unwritable.
    pub fn new(prefix: &str) -> TempDir {
        TempDir::create(prefix).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Creates `tagwarden-PREFIX-PID-N` under the system's temp dir.
    pub fn create(prefix: &str) -> Result<TempDir, Error> {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("tagwarden-{prefix}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).map_err(|reason| Error::Write {
            path: p.clone(),
            reason,
        })?;
        Ok(TempDir(p))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    ephemeral_port().expect("bind an ephemeral port")
}

fn ephemeral_port() -> std::io::Result<u16> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
}
