//! Starts the Kubernetes API server stand-in for bench/ scripts: writes a
//! kubeconfig for it to the path given, prints its URL on one line, then
//! serves until stdin closes.
//! Usage: serve-apiserver KUBECONFIG_PATH

use std::io::Read;
use tagwarden_testkit::ApiServer;

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: serve-apiserver KUBECONFIG_PATH");
        std::process::exit(2);
    };
    let api = ApiServer::start();
    let dir = std::path::Path::new(&path)
        .parent()
        .unwrap_or(std::path::Path::new("."));
    let written = api.kubeconfig(dir);
    if written != std::path::Path::new(&path) {
        std::fs::rename(&written, &path).expect("place the kubeconfig");
    }
    println!("{}", api.url());
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}
