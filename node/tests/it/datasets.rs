//! Datasets in and out of the mesh through any node: `dataset ls|show|export|rm --node`,
//! the rows streamed from the holders as CSV or Parquet, and a removal that leaves no copy
//! on any holder.

use std::time::Duration;

use crate::common::{data_path, meshml, status, three_node_cluster, wait_for};

/// A CSV's records, numbers compared as `f32` (an export writes `3.0` as `3`).
fn records(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|l| {
            l.split(',')
                .map(|f| match f.parse::<f32>() {
                    Ok(v) => format!("{v}"),
                    Err(_) => f.to_string(),
                })
                .collect()
        })
        .collect()
}

/// Chunks each node keeps for dataset `name` (its owners are `dataset.NAME.NONCE`), and
/// chunks it stores in all.
fn kept(nodes: &[crate::common::Node], name: &str) -> Vec<(u64, u64)> {
    let prefix = format!("dataset.{name}.");
    nodes
        .iter()
        .map(|n| {
            let s = status(n);
            let mine = s["store"]["owners"]
                .as_object()
                .map(|o| {
                    o.iter()
                        .filter(|(k, _)| k.starts_with(&prefix))
                        .map(|(_, v)| v.as_u64().unwrap_or(0))
                        .sum()
                })
                .unwrap_or(0);
            (
                mine,
                s["store"]["chunks"]
                    .as_u64()
                    .expect("the store's chunk count"),
            )
        })
        .collect()
}

/// Copies of `name`'s chunks the mesh lists (chunk, holder pairs).
fn listed(node: &crate::common::Node, name: &str) -> u64 {
    let (code, v) = crate::common::call(node, "GET", &format!("/v1/datasets/{name}"), None);
    assert_eq!(code, 200, "{v}");
    v["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["holders"].as_array().unwrap().len() as u64)
        .sum()
}

fn put(url: &str, name: &str, replicas: &str) {
    let (ok, out, err) = meshml(&[
        "dataset",
        "put",
        &data_path("iris"),
        "--name",
        name,
        "--replicas",
        replicas,
        "--chunk-rows",
        "40",
        "--node",
        url,
    ]);
    assert!(ok, "{out}{err}");
}

#[test]
fn datasets_leave_the_mesh_whole_and_rm_frees_every_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _, _) = three_node_cluster(tmp.path(), &[]);
    let url: Vec<String> = nodes.iter().map(|n| n.http_url()).collect();

    // A command refused because a node holds the data directory names the --node form.
    let a_dir = tmp.path().join("a");
    let (ok, _, err) = meshml(&["dataset", "ls", "--data-dir", a_dir.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("meshml dataset ls --node http://"), "{err}");
    let (ok, _, err) = meshml(&[
        "dataset",
        "export",
        "iris",
        "--out",
        "x.csv",
        "--data-dir",
        a_dir.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        err.contains("meshml dataset export iris --node http://") && err.contains("--out x.csv"),
        "{err}"
    );

    let before = kept(&nodes, "iris");
    let (ok, out, err) = meshml(&[
        "dataset",
        "put",
        &data_path("iris"),
        "--name",
        "iris",
        "--replicas",
        "2",
        "--chunk-rows",
        "40",
        "--node",
        &url[2],
    ]);
    assert!(ok, "{out}{err}");
    let stored = kept(&nodes, "iris");
    // 4 chunks, 2 copies each, spread over the members.
    assert_eq!(stored.iter().map(|k| k.0).sum::<u64>(), 8, "{stored:?}");

    let (ok, out, err) = meshml(&["dataset", "ls", "--node", &url[0]]);
    assert!(ok, "{err}");
    let row = out
        .lines()
        .find(|l| l.starts_with("iris"))
        .expect("iris listed");
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[1], "150", "{out}");
    assert_eq!(cells[2], "4", "{out}");
    assert_eq!(cells[3], "4", "{out}");
    assert_eq!(cells.get(6), Some(&"2"), "two copies of every chunk: {out}");
    assert!(
        out.contains("3 classes: setosa, versicolor, virginica"),
        "{out}"
    );

    let (ok, out, err) = meshml(&["dataset", "show", "iris", "--node", &url[1]]);
    assert!(ok, "{err}");
    assert!(
        out.contains("features:  4 (sepal_length, sepal_width, petal_length, petal_width)"),
        "{out}"
    );
    assert!(out.contains("target:    species"), "{out}");
    assert!(out.contains("2 copies wanted, fewest now 2"), "{out}");
    assert_eq!(
        out.lines().filter(|l| l.contains(" rows ")).count(),
        4,
        "{out}"
    );

    // CSV out through another node than the one it went in by: the input, row for row.
    let input = std::fs::read_to_string(data_path("iris")).unwrap();
    let csv = tmp.path().join("out").join("iris.csv");
    std::fs::create_dir_all(csv.parent().unwrap()).unwrap();
    let (ok, out, err) = meshml(&[
        "dataset",
        "export",
        "iris",
        "--node",
        &url[0],
        "--out",
        csv.to_str().unwrap(),
    ]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("exported 'iris' from the mesh as csv"),
        "{out}"
    );
    let exported = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(records(&exported), records(&input));
    // The same bytes on standard output.
    let (ok, out, err) = meshml(&["dataset", "export", "iris", "--node", &url[1]]);
    assert!(ok, "{err}");
    assert_eq!(out, exported);

    // Parquet out, read back by a local store: the same rows again.
    let pq = tmp.path().join("out").join("iris.parquet");
    let (ok, out, err) = meshml(&[
        "dataset",
        "export",
        "iris",
        "--node",
        &url[2],
        "--out",
        pq.to_str().unwrap(),
    ]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("as parquet"), "{out}");
    let local = tmp.path().join("local");
    let (ok, out, err) = meshml(&[
        "dataset",
        "put",
        pq.to_str().unwrap(),
        "--name",
        "back",
        "--data-dir",
        local.to_str().unwrap(),
    ]);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = meshml(&[
        "dataset",
        "export",
        "back",
        "--data-dir",
        local.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert_eq!(out, exported);

    // A dataset the mesh does not have: refused, and no file is left behind.
    let missing = tmp.path().join("out").join("nope.csv");
    let (ok, _, err) = meshml(&[
        "dataset",
        "export",
        "nope",
        "--node",
        &url[0],
        "--out",
        missing.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains("no dataset 'nope' on the mesh"), "{err}");
    assert_eq!(
        std::fs::read_dir(tmp.path().join("out")).unwrap().count(),
        2,
        "only iris.csv and iris.parquet"
    );

    // Removal through any node: every holder frees its copies.
    let (ok, out, err) = meshml(&["dataset", "rm", "iris", "--node", &url[1]]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("removed dataset 'iris' from the mesh: 150 rows, 4 chunks"),
        "{out}"
    );
    let mut now = Vec::new();
    let freed = wait_for(Duration::from_secs(10), || {
        now = kept(&nodes, "iris");
        now.iter().zip(&before).all(|(n, b)| n.0 == 0 && n.1 == b.1)
    });
    assert!(freed.is_some(), "before {before:?}, after rm {now:?}");
    let (ok, out, _) = meshml(&["dataset", "ls", "--node", &url[2]]);
    assert!(ok);
    assert!(out.contains("no datasets on the mesh"), "{out}");
    let (ok, _, err) = meshml(&["dataset", "rm", "iris", "--node", &url[0]]);
    assert!(!ok);
    assert!(
        err.contains("no dataset 'iris'") && err.contains("404"),
        "{err}"
    );

    // Removed and stored again at once, from the same file (the same chunks): the second
    // dataset's copies are its own, and the first removal never frees them.
    put(&url[0], "iris", "2");
    let (ok, _, err) = meshml(&["dataset", "rm", "iris", "--node", &url[1]]);
    assert!(ok, "{err}");
    put(&url[2], "iris", "2");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(kept(&nodes, "iris").iter().map(|k| k.0).sum::<u64>(), 8);
    assert_eq!(listed(&nodes[0], "iris"), 8);
    let (ok, out, err) = meshml(&["dataset", "export", "iris", "--node", &url[1]]);
    assert!(ok, "{err}");
    assert_eq!(out, exported);

    // Two datasets of the same chunks: removing one leaves every copy the mesh lists for
    // the other on the node that lists it.
    put(&url[1], "twin", "1");
    let (ok, _, err) = meshml(&["dataset", "rm", "iris", "--node", &url[2]]);
    assert!(ok, "{err}");
    let mut now = Vec::new();
    let consistent = wait_for(Duration::from_secs(10), || {
        now = kept(&nodes, "twin");
        kept(&nodes, "iris").iter().all(|k| k.0 == 0)
            && now.iter().map(|k| k.0).sum::<u64>() == listed(&nodes[0], "twin")
    });
    assert!(
        consistent.is_some(),
        "twin kept {now:?}, listed {}",
        listed(&nodes[0], "twin")
    );
    for u in &url {
        let (ok, out, err) = meshml(&["dataset", "export", "twin", "--node", u]);
        assert!(ok, "{err}");
        assert_eq!(out, exported);
    }
}
