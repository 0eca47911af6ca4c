//! A store with a corrupt record: `export` and `list` exist to get data out,
//! so they write every readable object, name each bad key on stderr (one
//! line each) and exit 5 at the end.

use crate::support::cli::*;
use serde::Deserialize;

const BAD: &str = "error: corrupt record in collection core/v1/pods, key default/web-1: ";

fn damaged() -> (tempfile::TempDir, String) {
    let (tmp, dir) = store_dir();
    fixture(dir.as_ref());
    flip_byte(dir.as_ref(), &pods(), &object_record("default/web-1"));
    (tmp, dir)
}

/// stderr holds exactly one line, naming the bad record.
fn one_bad_line(r: &Run, what: &str) {
    assert_eq!(r.code, 5, "{what}: {}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{what}: {}", r.stderr);
    assert!(r.stderr.starts_with(BAD), "{what}: {}", r.stderr);
}

fn names(objects: &[serde_json::Value]) -> Vec<&str> {
    objects
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap())
        .collect()
}

#[test]
fn export_writes_every_readable_object() {
    let (_tmp, dir) = damaged();
    let r = kp(&["export", &dir]);
    one_bad_line(&r, "export");
    let objects: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(names(&objects), ["settings", "web-0", "dns-0", "db", "w1"]);

    let r = kp(&["export", &dir, "-r", "pods", "-o", "yaml"]);
    one_bad_line(&r, "export -o yaml");
    let docs: Vec<serde_json::Value> = serde_yaml::Deserializer::from_str(&r.stdout)
        .map(|d| serde_json::Value::deserialize(d).unwrap())
        .collect();
    assert_eq!(names(&docs), ["web-0", "dns-0"]);
}

#[test]
fn list_writes_every_readable_object_in_every_form() {
    let (_tmp, dir) = damaged();
    let list = |extra: &[&str]| {
        let mut args = vec!["list", dir.as_str(), "-r", "pods"];
        args.extend_from_slice(extra);
        let r = kp(&args);
        one_bad_line(&r, &format!("{extra:?}"));
        r.stdout
    };
    assert_eq!(list(&["-o", "name"]), "pod/web-0\npod/dns-0\n");
    let table = list(&[]);
    assert_eq!(
        table
            .lines()
            .map(|l| l.split_whitespace().nth(1).unwrap())
            .collect::<Vec<_>>(),
        ["NAME", "web-0", "dns-0"]
    );
    let json: serde_json::Value = serde_json::from_str(&list(&["-o", "json"])).unwrap();
    assert_eq!(names(json["items"].as_array().unwrap()), ["web-0", "dns-0"]);
    let yaml: serde_json::Value = serde_yaml::from_str(&list(&["-o", "yaml"])).unwrap();
    assert_eq!(names(yaml["items"].as_array().unwrap()), ["web-0", "dns-0"]);
    // Through the label index and within the namespace, too.
    assert_eq!(list(&["-l", "app=web", "-o", "name"]), "pod/web-0\n");
    assert_eq!(list(&["-n", "default", "-o", "name"]), "pod/web-0\n");

    // Another namespace never held the bad record: nothing to report.
    let r = kp(&[
        "list",
        &dir,
        "-r",
        "pods",
        "-n",
        "kube-system",
        "-o",
        "name",
    ]);
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (0, "pod/dns-0\n", "")
    );
}
