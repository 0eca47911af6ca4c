//! `kube-persist list` against a store built by the library.

use crate::support::cli::*;

#[test]
fn pods_table_all_namespaces() {
    let (_tmp, dir) = store_dir();
    fixture(dir.as_ref());
    let out = ok(&["list", &dir, "--resource", "pods"]);
    assert_eq!(
        out,
        "\
NAMESPACE     NAME    READY   STATUS             RESTARTS   NODE     AGE
default       web-0   1/1     Running            1          node-a   60m
default       web-1   0/1     CrashLoopBackOff   1          node-b   60m
kube-system   dns-0   1/1     Running            1          node-a   60m
"
    );
    // -A says the same thing explicitly.
    assert_eq!(ok(&["list", &dir, "-r", "po", "-A"]), out);
}

#[test]
fn one_namespace_wide_and_name() {
    let (_tmp, dir) = store_dir();
    fixture(dir.as_ref());
    assert_eq!(
        ok(&["list", &dir, "-r", "pod", "-n", "default", "-o", "wide"]),
        "\
NAME    READY   STATUS             RESTARTS   NODE     AGE   IP         RESOURCEVERSION
web-0   1/1     Running            1          node-a   60m   10.0.0.7   10
web-1   0/1     CrashLoopBackOff   1          node-b   60m   10.0.0.7   11
"
    );
    assert_eq!(
        ok(&["list", &dir, "-r", "Pod", "-n", "kube-system", "-o", "name"]),
        "pod/dns-0\n"
    );
    for name in ["widgets.example.com", "wd", "wd.example.com"] {
        assert_eq!(
            ok(&["list", &dir, "-r", name, "-o", "name"]),
            "widget.example.com/w1\n",
            "{name}"
        );
    }
}

#[test]
fn other_kinds_have_their_columns() {
    let (_tmp, dir) = store_dir();
    fixture(dir.as_ref());
    assert_eq!(
        ok(&["list", &dir, "-r", "cm"]),
        "NAMESPACE   NAME       DATA   AGE\ndefault     settings   2      150m\n"
    );
    assert_eq!(
        ok(&["list", &dir, "-r", "secret"]),
        "NAMESPACE   NAME   TYPE     DATA   AGE\ndefault     db     Opaque   2      2d\n"
    );
    assert_eq!(
        ok(&["list", &dir, "-r", "Widget"]),
        "NAMESPACE   NAME   AGE\ndefault     w1     30s\n"
    );
}

#[test]
fn empty_namespace_lists_nothing_on_stdout() {
    let (_tmp, dir) = store_dir();
    fixture(dir.as_ref());
    let r = kp(&["list", &dir, "-r", "pods", "-n", "nowhere"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""));
    assert!(
        r.stderr.contains("No pods found in namespace nowhere"),
        "{}",
        r.stderr
    );
    let json: serde_json::Value = serde_json::from_str(&ok(&[
        "list", &dir, "-r", "pods", "-n", "nowhere", "-o", "json",
    ]))
    .unwrap();
    assert_eq!(json["items"], serde_json::json!([]));
}

#[test]
fn json_and_yaml_are_list_objects() {
    let (_tmp, dir) = store_dir();
    fixture(dir.as_ref());
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["list", &dir, "-r", "pods", "-o", "json"])).unwrap();
    assert_eq!(json["kind"], "List");
    assert_eq!(json["apiVersion"], "v1");
    let names: Vec<&str> = json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web-0", "web-1", "dns-0"]);
    // Items carry their type, as `kubectl get -o json` shows them.
    assert_eq!(json["items"][0]["kind"], "Pod");
    assert_eq!(json["items"][0]["apiVersion"], "v1");
    assert_eq!(json["items"][0], {
        let mut p = pod("default", "web-0", 10, "node-a", true);
        p["kind"] = "Pod".into();
        p["apiVersion"] = "v1".into();
        p
    });

    let yaml: serde_json::Value =
        serde_yaml::from_str(&ok(&["list", &dir, "-r", "pods", "-o", "yaml"])).unwrap();
    assert_eq!(yaml, json);
}

#[test]
fn resource_is_optional_with_one_collection_only() {
    let (_tmp, dir) = store_dir();
    pods_only(dir.as_ref());
    assert_eq!(
        ok(&["list", &dir, "-o", "name"]),
        "pod/web-0\npod/web-1\npod/dns-0\n"
    );

    let (_tmp2, dir2) = store_dir();
    fixture(dir2.as_ref());
    let r = kp(&["list", &dir2]);
    assert_eq!(r.code, 64, "{}", r.stderr);
    assert_eq!(r.stdout, "");
    assert_eq!(
        r.stderr.trim_end(),
        "error: the store holds several collections (configmaps, pods, secrets, widgets.example.com); choose one with --resource"
    );
}

#[test]
fn label_selectors() {
    let (_tmp, dir) = store_dir();
    fixture(dir.as_ref());
    let names = |sel: &str| ok(&["list", &dir, "-r", "pods", "-l", sel, "-o", "name"]);
    assert_eq!(names("app=web"), "pod/web-0\npod/web-1\n");
    assert_eq!(names("app==dns"), "pod/dns-0\n");
    assert_eq!(names("app!=web"), "pod/dns-0\n");
    assert_eq!(
        names("app in (dns, web),tier=web"),
        "pod/web-0\npod/web-1\npod/dns-0\n"
    );
    assert_eq!(names("app notin (web)"), "pod/dns-0\n");
    assert_eq!(names("tier"), "pod/web-0\npod/web-1\npod/dns-0\n");
    assert_eq!(names("!tier"), "");
    assert_eq!(names("app=nothing"), "");
    // Selector and namespace together, through the label index.
    assert_eq!(
        ok(&[
            "list",
            &dir,
            "-r",
            "pods",
            "-n",
            "kube-system",
            "-l",
            "tier=web",
            "-o",
            "name"
        ]),
        "pod/dns-0\n"
    );
    for (selector, reason) in [
        ("app in ()", "empty value set \"()\" at position 8: \"in\" needs at least one value"),
        ("app notin ()", "empty value set \"()\" at position 11: \"notin\" needs at least one value"),
        ("a=b=c", "unexpected \"=\" at position 4, expected \",\" or the end"),
        ("a b", "unexpected \"b\" at position 3, expected an operator (=, ==, !=, in, notin) after key \"a\""),
        ("a,!", "expected a label key, found the end"),
    ] {
        let r = kp(&["list", &dir, "-r", "pods", "-l", selector]);
        assert_eq!((r.code, r.stdout.as_str()), (64, ""), "{selector}");
        assert_eq!(
            r.stderr,
            format!("error: unable to parse label selector {selector:?}: {reason}\n")
        );
    }
    let r = kp(&["list", &dir, "-r", "pods", "-l", "app in (web"]);
    assert_eq!((r.code, r.stdout.as_str()), (64, ""));
    assert_eq!(r.stderr.lines().count(), 1);
    assert!(
        r.stderr
            .starts_with("error: unable to parse label selector \"app in (web\": "),
        "{}",
        r.stderr
    );
}

#[test]
fn namespace_is_ignored_for_cluster_scoped_resources() {
    let (_tmp, dir) = store_dir();
    with_store(dir.as_ref(), |store| {
        let node = |name: &str| {
            serde_json::json!({"metadata": {"name": name, "resourceVersion": "3",
                "creationTimestamp": "2026-01-01T11:00:00Z"},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]}})
        };
        apply(store, &nodes(), vec![node("node-a"), node("node-b")], 3);
    });
    let all = "NAME     STATUS   AGE\nnode-a   Ready    60m\nnode-b   Ready    60m\n";
    assert_eq!(ok(&["list", &dir]), all);
    // As kubectl: -n means nothing to nodes, so every node is listed.
    let r = kp(&["list", &dir, "-n", "default"]);
    assert_eq!((r.code, r.stdout.as_str(), r.stderr.as_str()), (0, all, ""));
    assert_eq!(
        ok(&["list", &dir, "-n", "kube-system", "-o", "name"]),
        "node/node-a\nnode/node-b\n"
    );
}

#[test]
fn empty_or_bogus_arguments_exit_64() {
    let (_tmp, dir) = store_dir();
    fixture(dir.as_ref());
    let r = kp(&["list", &dir, "-r", ""]);
    assert_eq!((r.code, r.stdout.as_str()), (64, ""), "{}", r.stderr);
    assert_eq!(
        r.stderr,
        "error: --resource is empty; give a plural, singular, short name or kind (pods, po, Pod...)\n"
    );
    for args in [
        vec!["get", &dir, "-r", " ", "default/web-0"],
        vec!["export", &dir, "-r", ""],
        vec!["history", &dir, "-r", "", "default/web-0"],
    ] {
        let r = kp(&args);
        assert_eq!(r.code, 64, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.starts_with("error: --resource is empty"),
            "{}",
            r.stderr
        );
    }

    let r = kp(&["list", &dir, "-r", "pods", "-n", ""]);
    assert_eq!((r.code, r.stdout.as_str()), (64, ""), "{}", r.stderr);
    assert!(r.stderr.contains("'--namespace <NS>'"), "{}", r.stderr);
}

fn list_with_now(dir: &str, now: &str) -> Run {
    kp_env(&["list", dir, "-r", "pods"], &[("KUBE_PERSIST_NOW", now)])
}

#[test]
fn kube_persist_now_empty_is_unset_and_bogus_is_a_usage_error() {
    let (_tmp, dir) = store_dir();
    fixture(dir.as_ref());
    let r = list_with_now(&dir, "");
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Real "now" is long after the fixture's creation times.
    assert!(
        r.stdout.lines().nth(1).unwrap().contains("web-0"),
        "{}",
        r.stdout
    );
    let r = list_with_now(&dir, "yesterday");
    assert_eq!((r.code, r.stdout.as_str()), (64, ""));
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.starts_with(
            "error: environment variable KUBE_PERSIST_NOW=\"yesterday\" is not an RFC 3339 time (e.g. 2026-01-01T00:00:00Z): "
        ),
        "{}",
        r.stderr
    );
}

#[test]
fn collections_of_one_resource_are_named_in_full() {
    let (_tmp, dir) = store_dir();
    overlapping_pods(dir.as_ref());
    let names = |r: &str| ok(&["list", &dir, "-r", r, "-o", "name"]);
    // The plain name is the unrestricted collection's full name.
    assert_eq!(names("pods"), "pod/web-0\npod/web-1\npod/dns-0\n");
    assert_eq!(names("pods [namespace=default]"), "pod/web-0\npod/web-1\n");
    assert_eq!(names("pods [labels=app=web]"), "pod/web-0\npod/web-1\n");
    assert_eq!(names("po [namespace=default]"), "pod/web-0\npod/web-1\n");

    // So is every other plain kubectl name of the resource; where no
    // collection is unrestricted, `inspect::resource`'s tests show the
    // ambiguity error.
    for plain in ["po", "pod", "Pod"] {
        assert_eq!(names(plain), "pod/web-0\npod/web-1\npod/dns-0\n", "{plain}");
    }

    let r = kp(&["list", &dir, "-r", "pods [namespace=nope]"]);
    assert_eq!(r.code, 6, "{}", r.stderr);
    assert_eq!(
        r.stderr,
        "error: the store holds no resource named \"pods [namespace=nope]\" (it holds: pods, \
         pods [labels=app=web], pods [namespace=default])\n"
    );

    // get, history and export take the same names.
    let got: serde_json::Value = serde_json::from_str(&ok(&[
        "get",
        &dir,
        "-r",
        "pods [namespace=default]",
        "default/web-1",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(got["metadata"]["name"], "web-1");
    let history = ok(&[
        "history",
        &dir,
        "-r",
        "pods [labels=app=web]",
        "default/web-0",
        "-o",
        "json",
    ]);
    assert_eq!(
        serde_json::from_str::<Vec<serde_json::Value>>(&history)
            .unwrap()
            .len(),
        1
    );
    let exported = ok(&["export", &dir, "-r", "pods [namespace=default]"]);
    assert_eq!(exported.lines().count(), 2);
    // Without -r, every collection in turn: shared objects once per collection.
    assert_eq!(ok(&["export", &dir]).lines().count(), 7);
}

#[test]
fn a_malformed_namespace_is_a_usage_error() {
    let (_tmp, dir) = store_dir();
    fixture(dir.as_ref());
    for ns in ["a/b", "Bad_NS", "x-", &"a".repeat(64)] {
        let r = kp(&["list", &dir, "-r", "pods", "-n", ns]);
        assert_eq!((r.code, r.stdout.as_str()), (64, ""), "{ns}: {}", r.stderr);
        assert_eq!(
            r.stderr,
            format!(
                "error: invalid namespace {ns:?}: a namespace is at most 63 lowercase letters, \
                 digits and '-', starting and ending with a letter or digit\n"
            )
        );
    }
    // Also where -n does not apply: it is a typing mistake all the same.
    let r = kp(&["list", &dir, "-r", "pods", "-n", "a/b", "-o", "json"]);
    assert_eq!(r.code, 64, "{}", r.stderr);
    // The longest valid namespace is just empty.
    let r = kp(&["list", &dir, "-r", "pods", "-n", &"a".repeat(63)]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{}", r.stderr);
}
