//! `provider: azure` against the testkit stand-ins of Entra's token
//! endpoint, IMDS and a registry's `/oauth2/exchange` (no emulator exists),
//! the front relaying to the real docker-registry behind htpasswd.

use std::sync::Arc;
use std::time::Duration;
use tagwarden_api::image::ImageRef;
use tagwarden_cloud::{CloudAuth, Env};
use tagwarden_registry::{
    ClientOptions, CloudLogin, ConnectTo, Identity, Network, Pool, Provider, Registry as _,
    ScanSettings,
};
use tagwarden_testkit::{
    ACR_USER, AcrFront, AzureEntra, AzureImds, EntraConfig, Federated, Pki, Registry, RegistryAuth,
    TempDir,
};

const ACR: &str = "tagwarden.azurecr.io";
const SCOPE: &str = "https://containerregistry.azure.net/.default";
const FEDERATED: &str = "federated-s3cr3t-token";

struct Acr {
    dir: TempDir,
    pki: Pki,
    front: AcrFront,
    reg: Registry,
    ca: std::path::PathBuf,
}

impl Acr {
    fn start(entra_token: &str) -> Acr {
        let dir = TempDir::new("acr");
        let pki = Pki::generate_for(dir.path(), &[ACR]);
        let front = AcrFront::start(&pki, ACR, entra_token);
        let reg = Registry::start(RegistryAuth::Basic {
            user: ACR_USER.into(),
            password: front.refresh_token(),
        });
        reg.publish(
            "team/app",
            &["2.0.0"],
            Some((ACR_USER, &front.refresh_token())),
        );
        front.set_upstream(reg.port);
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, &pki.ca_pem).expect("ca");
        Acr {
            dir,
            pki,
            front,
            reg,
            ca,
        }
    }

    fn pool(&self, env: &[(&str, &str)]) -> Pool {
        let connect = self.front.connect_to();
        let mut vars = vec![
            ("TAGWARDEN_CONNECT_TO", connect.as_str()),
            ("SSL_CERT_FILE", self.ca.to_str().expect("utf-8")),
        ];
        vars.extend_from_slice(env);
        Pool::new()
            .with_login(Arc::new(
                CloudAuth::new(Env::from_pairs(vars)).expect("auth"),
            ))
            .with_network(Network {
                connect_to: vec![ConnectTo::parse(&connect).expect("entry")],
                extra_roots_pem: Some(self.pki.ca_pem.clone().into_bytes()),
            })
    }
}

fn settings() -> ScanSettings {
    ScanSettings {
        image: ImageRef::parse(&format!("{ACR}/team/app")).expect("image"),
        options: ClientOptions {
            attempts: 1,
            ..ClientOptions::default()
        },
        credentials: None,
        login: Some(CloudLogin {
            provider: Provider::Azure,
            registry: ACR.into(),
            identity: Identity::Controller,
            proxy: None,
            timeout: Duration::from_secs(30),
        }),
        exclusions: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_identity_then_the_registry_exchange_then_a_rotated_refresh_token() {
    let acr = Acr::start("entra-access-token");
    let dir = TempDir::new("entra");
    let pki = Pki::generate_for(dir.path(), &[]);
    let entra = AzureEntra::start(
        &pki,
        EntraConfig {
            assertion: Federated::Token(FEDERATED.into()),
            scope: SCOPE.into(),
            ..EntraConfig::default()
        },
    );
    let config = entra.config();
    let token_file = acr.dir.path().join("azure-identity-token");
    std::fs::write(&token_file, FEDERATED).expect("token");
    // The authority's certificate comes from its own CA: trust both.
    let both = acr.dir.path().join("both.pem");
    std::fs::write(&both, format!("{}{}", acr.pki.ca_pem, pki.ca_pem)).expect("bundle");
    let authority = entra.authority_host();
    let vars = |client: &'static str| {
        let client = if client.is_empty() {
            config.client_id.clone()
        } else {
            client.into()
        };
        (client, both.to_str().expect("utf-8").to_string())
    };
    let (client, bundle) = vars("");
    let env = [
        ("AZURE_CLIENT_ID", client.as_str()),
        ("AZURE_TENANT_ID", config.tenant_id.as_str()),
        (
            "AZURE_FEDERATED_TOKEN_FILE",
            token_file.to_str().expect("utf-8"),
        ),
        ("AZURE_AUTHORITY_HOST", authority.as_str()),
        ("SSL_CERT_FILE", bundle.as_str()),
    ];
    let pool = acr.pool(&env);
    let list = pool.scan(&settings()).await.expect("scan");
    assert_eq!(list.tags, ["2.0.0"]);
    pool.scan(&settings()).await.expect("cached");
    assert_eq!((entra.tokens_issued(), acr.front.exchanges()), (1, 1));

    // The registry stops taking the refresh token: dropped, fetched once more.
    let mut acr = acr;
    let fresh = acr.front.rotate();
    acr.reg.restart(
        RegistryAuth::Basic {
            user: ACR_USER.into(),
            password: fresh,
        },
        None,
    );
    pool.scan(&settings()).await.expect("after rotation");
    assert_eq!((entra.tokens_issued(), acr.front.exchanges()), (2, 2));

    // Another client: Entra refuses, and says why; the assertion stays secret.
    let (_, bundle) = vars("");
    let wrong = [
        ("AZURE_CLIENT_ID", "11111111-0000-4000-8000-000000000000"),
        ("AZURE_TENANT_ID", config.tenant_id.as_str()),
        (
            "AZURE_FEDERATED_TOKEN_FILE",
            token_file.to_str().expect("utf-8"),
        ),
        ("AZURE_AUTHORITY_HOST", authority.as_str()),
        ("SSL_CERT_FILE", bundle.as_str()),
    ];
    let e = acr
        .pool(&wrong)
        .scan(&settings())
        .await
        .expect_err("wrong client");
    let m = e.to_string();
    assert!(
        m.starts_with("spec.provider 'azure': entra token (workload identity): HTTP 4")
            && m.contains("AADSTS"),
        "{m}"
    );
    assert!(!m.contains(FEDERATED), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_managed_identity_from_imds_logs_in() {
    let acr = Acr::start("imds-access-token");
    let imds = AzureImds::start(
        "https://containerregistry.azure.net",
        "imds-access-token",
        3600,
    );
    let host = format!("http://{}", imds.host());
    let pool = acr.pool(&[("AZURE_POD_IDENTITY_AUTHORITY_HOST", host.as_str())]);
    let list = pool.scan(&settings()).await.expect("scan");
    assert_eq!(list.tags, ["2.0.0"]);
    let r = &imds.requests()[0];
    assert!(
        r.headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("metadata") && v == "true")
    );

    // IMDS with another resource configured refuses ours, by name.
    let other = AzureImds::start("https://management.azure.com/", "x", 3600);
    let host = format!("http://{}", other.host());
    let e = acr
        .pool(&[("AZURE_POD_IDENTITY_AUTHORITY_HOST", host.as_str())])
        .scan(&settings())
        .await
        .expect_err("wrong resource");
    assert!(
        e.to_string().starts_with(
            "spec.provider 'azure': azure instance metadata: HTTP 400: invalid_resource"
        ),
        "{e}"
    );
}
