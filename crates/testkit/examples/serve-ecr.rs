//! Starts moto (STS, ECR) and the test registry over TLS behind htpasswd
//! with moto's ECR password, for bench/cloud-login.sh. Prints one line,
//! `ECR_HOST REGISTRY_PORT CA_FILE MOTO_ENDPOINT PASSWORD`, then serves
//! until stdin closes. Usage: serve-ecr [N_TAGS]

use std::io::Read;
use tagwarden_testkit::{Moto, Pki, Registry, RegistryAuth, RegistryTls, TempDir};

const ECR: &str = "123456789012.dkr.ecr.me-central-1.amazonaws.com";

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("N_TAGS is a number"))
        .unwrap_or(1000);
    let moto = Moto::start();
    let password = moto.ecr_password("me-central-1");
    let dir = TempDir::new("serve-ecr");
    let pki = Pki::generate_for(dir.path(), &[ECR]);
    let auth = || RegistryAuth::Basic {
        user: "AWS".into(),
        password: password.clone(),
    };
    let mut reg = Registry::start(auth());
    reg.publish("app-name", &["0.0.0"], Some(("AWS", &password)));
    reg.bulk_tag(
        "app-name",
        "0.0.0",
        (1..n).map(|i| format!("{}.{}.{}", i / 10_000, (i / 100) % 100, i % 100)),
    );
    reg.restart(auth(), Some(RegistryTls::from_pki(&pki, false)));
    println!(
        "{ECR} {} {} {} {password}",
        reg.port,
        pki.ca_file.display(),
        moto.endpoint()
    );
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}
