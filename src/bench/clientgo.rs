//! client-go's informer as a contender: tests/apiserver's
//! `clientgo-informer`, a `SharedIndexInformer` on pods set up as a Go
//! controller sets it up, which prints the same JSON line as our own
//! children ([`super::ChildReport`], plus extras the parent ignores).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::apiserver;
use super::cluster::Endpoint;

/// The wire encodings client-go can be measured with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Encoding {
    /// JSON only, as kube-rs speaks: the fair comparison.
    Json,
    /// Protobuf, client-go's default for built-in types (the simulator has
    /// none, so there client-go falls back to JSON).
    Protobuf,
}

impl Encoding {
    /// Whether this is protobuf.
    pub fn is_protobuf(self) -> bool {
        self == Encoding::Protobuf
    }
}

/// The directory holding tests/apiserver's programs: `dir` when given,
/// else beside this build's profile directory (where the tests build them:
/// `target/apiserver-bin/`).
pub fn harness_dir(dir: Option<&Path>, exe: &Path) -> PathBuf {
    match dir {
        Some(d) => d.to_owned(),
        None => apiserver::default_bin_dir(exe.parent().unwrap_or(exe)),
    }
}

/// The arguments that make `clientgo-informer` sync pods from `endpoint`
/// and look up `probe` once synced, within `timeout_secs`.
pub fn args(
    endpoint: &Endpoint,
    probe: &str,
    encoding: Encoding,
    timeout_secs: u64,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    match &endpoint.kubeconfig {
        Some(kubeconfig) => {
            args.push("--kubeconfig".into());
            args.push(kubeconfig.clone().into_os_string());
        }
        None => {
            args.push("--server".into());
            args.push(endpoint.server.clone().into());
        }
    }
    args.push("--probe".into());
    args.push(probe.into());
    args.push("--timeout".into());
    args.push(format!("{timeout_secs}s").into());
    if encoding == Encoding::Json {
        args.push("--json".into());
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: Vec<OsString>) -> Vec<String> {
        args.into_iter().map(|a| a.into_string().unwrap()).collect()
    }

    #[test]
    fn a_plain_url_or_a_kubeconfig_and_json_unless_protobuf() {
        let sim = Endpoint {
            server: "http://127.0.0.1:1".into(),
            kubeconfig: None,
        };
        assert_eq!(
            strings(args(&sim, "ns/p", Encoding::Json, 60)),
            [
                "--server",
                "http://127.0.0.1:1",
                "--probe",
                "ns/p",
                "--timeout",
                "60s",
                "--json"
            ]
        );
        let real = Endpoint {
            server: "https://127.0.0.1:2".into(),
            kubeconfig: Some("/k".into()),
        };
        assert_eq!(
            strings(args(&real, "ns/p", Encoding::Protobuf, 5)),
            ["--kubeconfig", "/k", "--probe", "ns/p", "--timeout", "5s"]
        );
    }

    #[test]
    fn the_program_is_looked_for_beside_the_profile_dir_unless_named() {
        assert_eq!(
            harness_dir(None, Path::new("/w/target/release/kube-persist")),
            Path::new("/w/target/apiserver-bin")
        );
        assert_eq!(
            harness_dir(
                Some(Path::new("/x")),
                Path::new("/w/target/release/kube-persist")
            ),
            Path::new("/x")
        );
    }
}
