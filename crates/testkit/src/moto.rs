//! moto's server (PyPI `moto[server]`), the AWS emulator: STS and ECR on
//! one free 127.0.0.1 port, stopped on drop.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Moto {
    pub port: u16,
    child: Child,
}

/// An IAM user's access key, made in moto.
pub struct AwsKeys {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl Moto {
    /// Starts `moto_server`, or panics with the install hint.
    pub fn start() -> Moto {
        Moto::spawn(None)
    }

    /// moto checking every request's SigV4 signature against its IAM (after
    /// the three unsigned calls that make a user allowed to call ECR
    /// `GetAuthorizationToken`), and that user's key.
    pub fn start_verifying_signatures() -> (Moto, AwsKeys) {
        let moto = Moto::spawn(Some(3));
        // Unsigned, so these count toward the calls moto lets through.
        let auth = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20150101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0";
        let call = |form: &str| {
            let (status, _, body) = crate::http(
                moto.port,
                "POST",
                "/",
                &[
                    ("Authorization", auth),
                    ("Content-Type", "application/x-www-form-urlencoded"),
                ],
                form.as_bytes(),
            )
            .expect("moto IAM");
            let body = String::from_utf8_lossy(&body).into_owned();
            assert_eq!(status, 200, "{body}");
            body
        };
        call("Action=CreateUser&Version=2010-05-08&UserName=reflector");
        let key = call("Action=CreateAccessKey&Version=2010-05-08&UserName=reflector");
        let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:GetAuthorizationToken","Resource":"*"}]}"#;
        let encoded: String = policy
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        call(&format!(
            "Action=PutUserPolicy&Version=2010-05-08&UserName=reflector&PolicyName=ecr&PolicyDocument={encoded}"
        ));
        let tag = |t: &str| {
            let open = format!("<{t}>");
            let start = key.find(&open).expect("tag") + open.len();
            let end = key[start..].find('<').expect("end") + start;
            key[start..end].to_string()
        };
        let keys = AwsKeys {
            access_key_id: tag("AccessKeyId"),
            secret_access_key: tag("SecretAccessKey"),
        };
        (moto, keys)
    }

    fn spawn(unsigned_calls: Option<u32>) -> Moto {
        let port = crate::free_port();
        let mut cmd = Command::new("moto_server");
        if let Some(n) = unsigned_calls {
            cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", n.to_string());
        }
        let child = cmd
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("moto_server: {e}; install it with: pip install 'moto[server]'")
            });
        let mut moto = Moto { port, child };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto_server exited at start: {status}");
            }
            if let Ok((200, _, _)) = crate::http(port, "GET", "/moto-api/", &[], b"") {
                return moto;
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not start in 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `http://127.0.0.1:<port>`, for AWS_ENDPOINT_URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The ECR registry password moto issues to `region`'s caller: asked of
    /// moto itself (its GetAuthorizationToken), so a test need not know how
    /// moto makes it.
    pub fn ecr_password(&self, region: &str) -> String {
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20150101/{region}/ecr/aws4_request, SignedHeaders=host, Signature=0"
        );
        let (status, _, body) = crate::http(
            self.port,
            "POST",
            "/",
            &[
                (
                    "X-Amz-Target",
                    "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken",
                ),
                ("Content-Type", "application/x-amz-json-1.1"),
                ("Authorization", &auth),
            ],
            b"{}",
        )
        .expect("moto GetAuthorizationToken");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        let token = v["authorizationData"][0]["authorizationToken"]
            .as_str()
            .expect("token");
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(token)
            .expect("base64");
        let raw = String::from_utf8(raw).expect("utf-8");
        raw.strip_prefix("AWS:")
            .expect("AWS:<password>")
            .to_string()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
