//! `kube-persist get` against a store built by the library.

use crate::support::cli::*;

#[test]
fn get_yaml_is_the_object_with_its_type() {
    let (_tmp, dir) = store_dir();
    fixture(dir.as_ref());
    let out = ok(&["get", &dir, "-r", "cm", "default/settings"]);
    assert_eq!(
        out,
        r#"apiVersion: v1
data:
  a: "1"
  b: "2"
kind: ConfigMap
metadata:
  creationTimestamp: "2026-01-01T09:30:00Z"
  name: settings
  namespace: default
  resourceVersion: "13"
"#
    );
}

#[test]
fn get_json_round_trips() {
    let (_tmp, dir) = store_dir();
    fixture(dir.as_ref());
    let out = ok(&["get", &dir, "-r", "widget", "default/w1", "-o", "json"]);
    let got: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(got, widget("default", "w1", 15));
    // kubectl indents JSON by four spaces.
    assert!(
        out.starts_with("{\n    \"apiVersion\": \"example.com/v1\",\n"),
        "{out}"
    );
}

#[test]
fn every_kubectl_name_of_a_resource_works() {
    let (_tmp, dir) = store_dir();
    fixture(dir.as_ref());
    let want = ok(&["get", &dir, "-r", "pods", "kube-system/dns-0"]);
    for name in ["pod", "po", "Pod", "PODS"] {
        assert_eq!(
            ok(&["get", &dir, "--resource", name, "kube-system/dns-0"]),
            want,
            "{name}"
        );
    }
    for name in [
        "Widget",
        "widget",
        "widgets",
        "widgets.example.com",
        "widget.v1.example.com",
    ] {
        ok(&["get", &dir, "-r", name, "default/w1"]);
    }
}

#[test]
fn wrong_names_and_keys_say_what_is_wrong() {
    let (_tmp, dir) = store_dir();
    fixture(dir.as_ref());

    let r = kp(&["get", &dir, "-r", "pods", "default/nope"]);
    assert_eq!((r.code, r.stdout.as_str()), (6, ""));
    assert_eq!(
        r.stderr,
        "error: pods \"default/nope\" not found in the store\n"
    );

    let r = kp(&["get", &dir, "-r", "deploy", "default/web"]);
    assert_eq!(r.code, 6, "{}", r.stderr);
    assert!(
        r.stderr
            .starts_with("error: the store holds no resource named \"deploy\" (it holds: "),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.lines().count(), 1);

    let r = kp(&["get", &dir, "-r", "pods", "web-0"]);
    assert_eq!(r.code, 64, "{}", r.stderr);
    assert_eq!(
        r.stderr,
        "error: invalid object key \"web-0\": pods are namespaced; expected NAMESPACE/NAME\n"
    );

    for command in ["get", "history"] {
        let r = kp(&[command, &dir, "-r", "pods", "Bad_NS/web-0"]);
        assert_eq!((r.code, r.stdout.as_str()), (64, ""), "{}", r.stderr);
        assert_eq!(
            r.stderr,
            "error: invalid object key \"Bad_NS/web-0\": namespace \"Bad_NS\" is invalid: a \
             namespace is at most 63 lowercase letters, digits and '-', starting and ending with \
             a letter or digit\n"
        );
    }

    let r = kp(&["get", &dir, "-r", "pods", "default/web-0", "-o", "xml"]);
    assert_eq!(r.code, 64);
    assert!(r.stderr.contains("xml"), "{}", r.stderr);
}

#[test]
fn cluster_scoped_objects_are_named_without_namespace() {
    let (_tmp, dir) = store_dir();
    {
        with_store(dir.as_ref(), |store| {
            let node = serde_json::json!({"metadata": {"name": "node-a", "resourceVersion": "3"},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
            apply(store, &nodes(), vec![node], 3);
        });
    }
    let out = ok(&["get", &dir, "node-a", "-o", "json"]);
    let got: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(got["kind"], "Node");
    assert_eq!(
        ok(&["get", &dir, "-r", "no", "/node-a"]),
        ok(&["get", &dir, "node-a"])
    );
    assert_eq!(
        ok(&["list", &dir]),
        "NAME     STATUS   AGE\nnode-a   Ready    <unknown>\n"
    );
}

/// A ConfigMap whose keys and values YAML 1.1 (kubectl's go-yaml v2, PyYAML)
/// would read as something other than strings when left bare.
fn yaml11_configmap() -> serde_json::Value {
    serde_json::json!({
        "metadata": {"name": "tricky", "namespace": "default", "resourceVersion": "20",
            "creationTimestamp": "2026-11-23T13:39:13Z",
            "labels": {"on": "yes", "off": "no", "y": "n", "enabled": "true", "t": "~"}},
        "data": {
            "eq": "=", "null": "null", "int": "123", "float": "1.5", "hex": "0x1F",
            "sexagesimal": "1:20", "date": "2026-01-01", "empty": "", "plain": "web",
            "merge": "<<", "lines": "a\nb\n"
        }
    })
}

/// What kubectl prints for it: every such string double-quoted, keys too.
const YAML11_CONFIGMAP: &str = r#"apiVersion: v1
data:
  date: "2026-01-01"
  empty: ""
  eq: "="
  float: "1.5"
  hex: "0x1F"
  int: "123"
  lines: |
    a
    b
  merge: "<<"
  "null": "null"
  plain: web
  sexagesimal: "1:20"
kind: ConfigMap
metadata:
  creationTimestamp: "2026-11-23T13:39:13Z"
  labels:
    enabled: "true"
    "off": "no"
    "on": "yes"
    t: "~"
    "y": "n"
  name: tricky
  namespace: default
  resourceVersion: "20"
"#;

#[test]
fn yaml_quotes_what_yaml_1_1_would_misread() {
    let (_tmp, dir) = store_dir();
    with_store(dir.as_ref(), |store| {
        apply(store, &configmaps(), vec![yaml11_configmap()], 20)
    });
    let got = ok(&["get", &dir, "default/tricky"]);
    assert_eq!(got, YAML11_CONFIGMAP);
    // Strings stay strings when read back.
    let back: serde_json::Value = serde_yaml::from_str(&got).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["get", &dir, "default/tricky", "-o", "json"])).unwrap();
    assert_eq!(back, json);

    // The same emitter serves `list -o yaml` and `export -o yaml`.
    let indented: String = YAML11_CONFIGMAP
        .lines()
        .enumerate()
        .map(|(i, l)| format!("{}{l}\n", if i == 0 { "- " } else { "  " }))
        .collect();
    let list = ok(&["list", &dir, "-o", "yaml"]);
    assert_eq!(
        list,
        format!(
            "apiVersion: v1\nitems:\n{indented}kind: List\nmetadata:\n  resourceVersion: \"\"\n"
        )
    );
    assert_eq!(ok(&["export", &dir, "-o", "yaml"]), YAML11_CONFIGMAP);
}
