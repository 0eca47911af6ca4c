//! Table output, as kube-apiserver serves it to kubectl
//! (apiserver/pkg/endpoints/handlers/response.go `asTable`, and the column
//! printers of pkg/printers/internalversion/printers.go). The cells
//! themselves are tested beside the printers (src/sim/table.rs); these
//! cases hold the HTTP side: negotiation, includeObject, list metadata,
//! and a watch's headers on its first event only.

use crate::support::sim::*;
use serde_json::Value;

const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

#[tokio::test]
async fn a_list_asked_as_table_is_one_with_the_pages_metadata() {
    let sim = sim(|c| {
        c.pods = 30;
        c.namespaces = 1;
    })
    .await;
    let url = format!("{}/api/v1/pods?limit=10", sim.url());
    let (code, t) = get_as(&url, TABLE).await;
    assert_eq!(code, 200, "{t}");
    assert_eq!(
        (t["kind"].as_str(), t["apiVersion"].as_str()),
        (Some("Table"), Some("meta.k8s.io/v1"))
    );
    let names: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["priority"] == 0)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Name", "Ready", "Status", "Restarts", "Age"]);
    // The same page as the plain list: same names, same metadata.
    let plain = get_ok(&url).await;
    let rows = t["rows"].as_array().unwrap();
    let items = plain["items"].as_array().unwrap();
    assert_eq!(rows.len(), items.len());
    for (row, item) in rows.iter().zip(items) {
        assert_eq!(row["cells"][0], item["metadata"]["name"]);
        assert_eq!(row["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(row["object"]["metadata"], item["metadata"]);
        assert_eq!(row["cells"].as_array().unwrap().len(), 9, "wide cells too");
    }
    assert_eq!(
        t["metadata"]["resourceVersion"],
        plain["metadata"]["resourceVersion"]
    );
    assert!(t["metadata"]["continue"].is_string(), "{}", t["metadata"]);
    assert_eq!(
        t["metadata"]["remainingItemCount"],
        plain["metadata"]["remainingItemCount"]
    );
}

#[tokio::test]
async fn include_object_and_versions_are_negotiated_as_the_server_does() {
    let sim = sim(|c| {
        c.pods = 3;
        c.namespaces = 1;
    })
    .await;
    let pod = sim.objects("pods")[0].clone();
    let (ns, name) = (
        pod["metadata"]["namespace"].as_str().unwrap(),
        pod["metadata"]["name"].as_str().unwrap(),
    );
    let one = format!("{}/api/v1/namespaces/{ns}/pods/{name}", sim.url());

    let (code, t) = get_as(&format!("{one}?includeObject=Object"), TABLE).await;
    assert_eq!(code, 200, "{t}");
    let served = get_ok(&one).await;
    assert_eq!(t["rows"][0]["object"], served);
    assert_eq!(
        t["metadata"]["resourceVersion"],
        pod["metadata"]["resourceVersion"]
    );

    let (_, t) = get_as(&format!("{one}?includeObject=None"), TABLE).await;
    assert!(t["rows"][0].get("object").is_none(), "{t}");

    let (code, s) = get_as(&format!("{one}?includeObject=All"), TABLE).await;
    assert_eq!(
        (code, s["reason"].as_str()),
        (400, Some("BadRequest")),
        "{s}"
    );
    assert!(s["message"].as_str().unwrap().contains("\"All\""), "{s}");

    // kubectl 1.20's header also offers v1beta1; either version is served.
    let beta = "application/json;as=Table;v=v1beta1;g=meta.k8s.io";
    let (_, t) = get_as(&one, beta).await;
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1beta1");
    // A plain clause first, or a higher quality, wins over the Table.
    let (_, o) = get_as(
        &one,
        "application/json,application/json;as=Table;v=v1;g=meta.k8s.io",
    )
    .await;
    assert_eq!(o["kind"], "Pod");
    let (_, o) = get_as(
        &one,
        "application/json;as=Table;v=v1;g=meta.k8s.io;q=0.5,application/json",
    )
    .await;
    assert_eq!(o["kind"], "Pod");
}

#[tokio::test]
async fn a_watch_as_table_sends_the_columns_with_its_first_event_only() {
    let sim = sim(|c| {
        c.pods = 2;
        c.namespaces = 1;
    })
    .await;
    let list = get_ok(&format!("{}/api/v1/configmaps", sim.url())).await;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let url = format!(
        "{}/api/v1/namespaces/ns-000/configmaps?watch=1&resourceVersion={rv}",
        sim.url()
    );
    let mut w = WatchStream::open_accepting(&url, TABLE).await;
    assert_eq!(w.status, 200);
    for name in ["a", "b"] {
        sim.create(
            "configmaps",
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "ns-000"}, "data": {"k": "v"}}),
        )
        .unwrap();
    }
    let first = w.next_event().await;
    let second = w.next_event().await;
    assert_eq!(first["type"], "ADDED");
    assert_eq!(first["object"]["kind"], "Table");
    let cols: Vec<&str> = first["object"]["columnDefinitions"]
        .as_array()
        .expect("column definitions on the first event")
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cols, ["Name", "Data", "Age"]);
    assert_eq!(first["object"]["rows"][0]["cells"][0], "a");
    assert_eq!(first["object"]["rows"][0]["cells"][1], 1);
    assert_eq!(second["object"]["columnDefinitions"], Value::Null);
    assert_eq!(second["object"]["rows"][0]["cells"][0], "b");
}
