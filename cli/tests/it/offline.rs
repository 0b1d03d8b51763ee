//! Commands that need no running network: `simulate` on the worked examples and on
//! malformed scenarios, and `demo`, which runs its own network.

use std::path::{Path, PathBuf};

use crate::common::{network_lock, path_str, peerhours};

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn simulate_every_example_prints_one_balanced_json_document() {
    let files = examples();
    assert!(!files.is_empty(), "no examples/*.toml");
    for f in &files {
        let r = peerhours(&["simulate", &path_str(f), "--json"]).ok().json();
        for k in ["tasks", "products", "balances_mh", "accounts_mh"] {
            assert!(r[k].is_object(), "{}: no {k} object: {r}", f.display());
        }
        let sum: i64 = ["balances_mh", "accounts_mh"]
            .iter()
            .flat_map(|k| r[*k].as_object().expect("object").values())
            .map(|v| v.as_i64().expect("amounts are integers of milli-hours"))
            .sum();
        assert_eq!(sum, 0, "{}: the accounts do not sum to 0: {r}", f.display());
        assert_eq!(r["sum_mh"], 0, "{}: {r}", f.display());
        // The table for people works too.
        let table = peerhours(&["simulate", &path_str(f)]).ok();
        assert!(
            table.stdout.contains("sum"),
            "{}: {}",
            f.display(),
            table.stdout
        );
    }
    // cli.md's worked example, to the milli-hour.
    let cli = files
        .iter()
        .find(|f| f.ends_with("cli-example.toml"))
        .expect("examples/cli-example.toml");
    let r = peerhours(&["simulate", &path_str(cli), "--json"])
        .ok()
        .json();
    assert_eq!(r["tasks"]["clean"]["weight_bp"], 15_000, "{r}");
    assert_eq!(
        r["tasks"]["clean"]["winners"],
        serde_json::json!(["charlie", "alice"])
    );
    assert_eq!(r["products"]["lake-flat"]["price_mh"], 18_000, "{r}");
    assert_eq!(
        r["balances_mh"],
        serde_json::json!({ "alice": 5000, "bob": -16000, "charlie": 5000, "dora": 2000 })
    );
    assert_eq!(r["accounts_mh"]["pool"], 4000, "{r}");
}

#[test]
fn a_malformed_scenario_fails_naming_the_entry() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/cli-example.toml"),
    )
    .expect("examples/cli-example.toml");
    let cases = [
        (
            "non-winner",
            example.replacen(
                "task = \"clean\"\nmember = \"charlie\"\nhours",
                "task = \"clean\"\nmember = \"bob\"\nhours",
                1,
            ),
            "bob",
        ),
        (
            "unknown-name",
            example.replacen(
                "product = \"lake-flat\"\nmember = \"bob\"",
                "product = \"lake-flat\"\nmember = \"zed\"",
                1,
            ),
            "zed",
        ),
        (
            "below-cost",
            example.replacen("max_hours = 12.0", "max_hours = 2.0", 1),
            "charlie",
        ),
        ("not-toml", "[[member]\nname = ".to_string(), "not-toml"),
    ];
    for (name, text, needle) in cases {
        assert!(
            name == "not-toml" || text != example,
            "case {name} did not change the example"
        );
        let path = tmp.path().join(format!("{name}.toml"));
        std::fs::write(&path, &text).expect("write");
        let err = peerhours(&["simulate", &path_str(&path), "--json"]).fails_with(needle);
        assert!(
            err.contains(&format!("{name}.toml")),
            "names the file: {err}"
        );
    }
    peerhours(&["simulate", &path_str(&tmp.path().join("absent.toml"))])
        .fails_with("cannot read the scenario");
}

#[test]
fn demo_exits_zero() {
    // The demo runs its own 4-delegate network: one network at a time on this machine.
    let _lock = network_lock();
    let out = peerhours(&["demo", "--json"]).ok();
    let v = out.json();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["same_state_root"], true, "{v}");
    assert_eq!(v["audit"]["sum_mh"], 0, "{v}");
}
