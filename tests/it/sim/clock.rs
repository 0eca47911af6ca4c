//! The simulator's clock over HTTP (`GET`/`POST /sim/clock`), which the
//! outage bench and the demo use to fast-forward an outage with its writes.

use crate::support::sim::*;

async fn post(url: &str) -> (u16, serde_json::Value) {
    let resp = http().post(url).send().await.expect("request");
    let code = resp.status().as_u16();
    (code, resp.json().await.expect("a JSON body"))
}

#[tokio::test]
async fn advancing_the_clock_generates_the_writes_of_the_skipped_time() {
    let sim = sim(|c| {
        c.pods = 50;
        c.namespaces = 1;
    })
    .await;
    let url = format!("{}/sim/clock", sim.url());
    let before = get_ok(&url).await;
    let rv0: u64 = before["resourceVersion"].as_str().unwrap().parse().unwrap();
    let secs0 = before["clockSecs"].as_f64().unwrap();

    let (code, after) = post(&format!("{url}?advance=80&writesPerSecond=10")).await;
    assert_eq!(code, 200, "{after}");
    assert_eq!(after["writes"], 800, "{after}");
    assert!(
        after["clockSecs"].as_f64().unwrap() >= secs0 + 80.0,
        "{after}"
    );
    let rv1: u64 = after["resourceVersion"].as_str().unwrap().parse().unwrap();
    assert!(
        rv1 >= rv0 + 800,
        "each write spends a version: {rv0} → {rv1}"
    );
    assert_eq!(sim.current_rv(), rv1);

    // Without writes, only the clock moves.
    let (code, quiet) = post(&format!("{url}?advance=5")).await;
    assert_eq!((code, quiet["writes"].as_u64()), (200, Some(0)), "{quiet}");
    assert_eq!(sim.current_rv(), rv1);
}

#[tokio::test]
async fn bad_clock_requests_are_400_naming_the_parameter() {
    let sim = sim(|c| c.pods = 1).await;
    let url = format!("{}/sim/clock", sim.url());
    for (query, names) in [
        ("", "advance"),
        ("?advance=-1", "advance"),
        ("?advance=soon", "advance"),
        ("?advance=1&writesPerSecond=NaN", "writesPerSecond"),
    ] {
        let (code, status) = post(&format!("{url}{query}")).await;
        assert_eq!(code, 400, "{query}: {status}");
        assert!(
            status["message"].as_str().unwrap().contains(names),
            "{query}: {status}"
        );
    }
}
