//! The command line covers every admin API route: the route table in src/cli is kept in
//! step with the OpenAPI document and clap's command tree, and every command added for
//! it runs end to end, as the real `hostca` binary against the real server.

use crate::common;

use common::{api_key, hostca, spawn_app, Run, TestApp};
use serde_json::Value;

struct Cli {
    server: String,
    key: String,
    dir: String,
}

impl Cli {
    fn run(&self, args: &[&str]) -> Run {
        let mut all = args.to_vec();
        all.extend(["--server", &self.server, "--dir", &self.dir]);
        hostca(&all, &[("HOSTCA_API_KEY", &self.key)])
    }

    fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert!(r.ok, "{args:?}: {}", r.stderr);
        r.stdout
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.ok(&all);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {out}"))
    }
}

/// The one error line on stderr, and a failing exit.
fn one_line_error(r: &Run) -> String {
    assert!(!r.ok, "expected a failure: {}", r.stdout);
    let errors: Vec<&str> = r
        .stderr
        .trim()
        .lines()
        .filter(|l| !l.starts_with("hostca: warning: "))
        .collect();
    assert_eq!(errors.len(), 1, "one error line on stderr: {}", r.stderr);
    assert!(errors[0].starts_with("hostca: "), "{}", errors[0]);
    errors[0].to_string()
}

#[tokio::test]
async fn every_admin_api_route_has_a_command_and_every_command_exists() {
    let app = spawn_app().await;
    let doc: Value = app.get("/api/v1/openapi.json").await.json().await.unwrap();
    let mut admin_ops: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            // The admin API is what needs an API key; the host API and public routes don't.
            if op.get("security").is_some() {
                admin_ops.push((method.clone(), path.clone()));
            }
        }
    }
    assert!(admin_ops.len() >= 20, "{admin_ops:?}");
    let routes = hostca::cli::ROUTES;
    for (method, path) in &admin_ops {
        assert!(
            routes.iter().any(|(m, p, _)| m == method && p == path),
            "{method} {path} has no command in src/cli ROUTES"
        );
    }
    // auto-reissue needs exactly one decision: no silent default either way.
    for args in [
        vec!["host", "auto-reissue", "h.example.com"],
        vec![
            "host",
            "auto-reissue",
            "h.example.com",
            "--allow",
            "--disallow",
        ],
    ] {
        let r = hostca(&args, &[("HOSTCA_API_KEY", "k")]);
        assert!(
            !r.ok && r.stderr.contains("--allow"),
            "{args:?}: {}",
            r.stderr
        );
    }
    let tree = hostca::cli::command_tree();
    for (method, path, command) in routes {
        assert!(
            admin_ops.iter().any(|(m, p)| m == method && p == path),
            "ROUTES lists {method} {path}, which the OpenAPI document does not have"
        );
        let mut node = &tree;
        for word in command.split_whitespace() {
            node = node
                .find_subcommand(word)
                .unwrap_or_else(|| panic!("ROUTES names '{command}', which clap does not know"));
        }
    }
}

/// A server, its administrator logged in, and the command line with a key of theirs.
async fn cli_and_app() -> (TestApp, Cli, std::path::PathBuf) {
    let app = spawn_app().await;
    app.login().await;
    let key = api_key(&app, "cover").await;
    let dir = app.scratch().join("h");
    let cli = Cli {
        server: app.address.clone(),
        key,
        dir: dir.display().to_string(),
    };
    (app, cli, dir)
}

#[tokio::test]
async fn host_mapping_token_and_certificate_commands_end_to_end() {
    let (app, cli, dir) = cli_and_app().await;

    // Hosts: add, show, and errors as one line.
    let h = cli.json(&["host", "add", "web1.example.com"]);
    assert_eq!(h["primary_name"], "web1.example.com");
    let host_id = h["host_id"].as_str().unwrap().to_string();
    let out = cli.ok(&["host", "add", "web2.example.com"]);
    assert!(out.starts_with("Added host web2.example.com"), "{out}");
    let again = cli.run(&["host", "add", "web1.example.com"]);
    one_line_error(&again);
    let bad = cli.run(&["host", "add", "not a name"]);
    assert!(one_line_error(&bad).contains("(4"), "a 4xx: {}", bad.stderr);
    let shown = cli.json(&["host", "show", &host_id]);
    assert_eq!(shown["primary_name"], "web1.example.com");
    let table = cli.ok(&["host", "show", "web1.example.com"]);
    assert!(
        table.contains(&host_id) && table.contains("MAPPING"),
        "{table}"
    );
    let missing = cli.run(&["host", "show", "nowhere.example.com"]);
    assert!(
        one_line_error(&missing).contains("(404)"),
        "{}",
        missing.stderr
    );
    // A host name that tries to leave its path segment is sent encoded, so it names no
    // other route.
    let sneaky = cli.run(&["host", "show", "../settings"]);
    assert!(
        one_line_error(&sneaky).contains("(404)"),
        "{}",
        sneaky.stderr
    );

    // The auto-reissue window: opened with an end time, closed again.
    let opened = cli.json(&["host", "auto-reissue", "web1.example.com", "--allow"]);
    assert!(opened["auto_reissue_until"].is_string(), "{opened}");
    let closed = cli.json(&["host", "auto-reissue", &host_id, "--disallow"]);
    assert!(closed["auto_reissue_until"].is_null(), "{closed}");

    // Mappings: add then delete.
    let m = cli.json(&[
        "mapping",
        "add",
        "--host",
        "web1.example.com",
        "--name",
        "alias.example.com",
    ]);
    assert!(m["state"].is_string(), "{m}");
    let shown = cli.json(&["host", "show", "web1.example.com"]);
    assert!(
        shown["mappings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "alias.example.com"),
        "{shown}"
    );
    let out = cli.ok(&[
        "mapping",
        "delete",
        "--host",
        "web1.example.com",
        "--name",
        "alias.example.com",
    ]);
    assert!(out.contains("delete done"), "{out}");
    let shown = cli.json(&["host", "show", "web1.example.com"]);
    assert!(
        !shown["mappings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "alias.example.com"),
        "{shown}"
    );

    // Tokens: details, and deleting one by name (the DELETE route).
    cli.ok(&[
        "token",
        "create",
        "--name",
        "one",
        "--max-uses",
        "1",
        "--valid-for",
        "1d",
    ]);
    let t = cli.json(&["token", "details", "one"]);
    assert_eq!(t["name"], "one");
    assert!(t.get("value").is_none(), "details never carry the value");
    let d = cli.json(&["token", "delete", "one"]);
    assert_eq!(d["deleted"], 1);
    one_line_error(&cli.run(&["token", "details", "one"]));

    // Certificates: one issued to a host, then show, download, and revoke by host.
    let value = app.token_value("issue", "1").await;
    let r = hostca(
        &[
            "get-ca-certificate",
            "--yes",
            "--server",
            &app.address,
            "--dir",
            &cli.dir,
        ],
        &[],
    );
    assert!(r.ok, "{}", r.stderr);
    let r = hostca(
        &[
            "get-certificate",
            "--hostname",
            "cert.example.com",
            "--token",
            &value,
            "--server",
            &app.address,
            "--dir",
            &cli.dir,
        ],
        &[],
    );
    assert!(r.ok, "{}", r.stderr);
    let list = cli.json(&["cert", "list", "--search", "cert.example.com"]);
    let serial = list["certificates"][0]["serial"]
        .as_str()
        .unwrap()
        .to_string();
    let c = cli.json(&["cert", "show", &serial]);
    assert_eq!(c["serial"], serial.as_str());
    assert_eq!(c["host_name"], "cert.example.com");
    let table = cli.ok(&["cert", "show", &serial]);
    assert!(table.contains("sha256_fingerprint"), "{table}");
    let pem = cli.ok(&["cert", "download", &serial]);
    let local = std::fs::read_to_string(dir.join("host.pem")).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    assert!(local.contains(pem.trim()), "the PEM the host holds");
    let file = app.scratch().join("c.pem");
    let out = cli.ok(&["cert", "download", &serial, "--out", file.to_str().unwrap()]);
    assert!(out.contains("written to"), "{out}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), pem);
    one_line_error(&cli.run(&["cert", "show", "00"]));
    let bad_reason = cli.run(&["host", "revoke", "cert.example.com", "--reason", "because"]);
    assert!(
        one_line_error(&bad_reason).contains("(4"),
        "{}",
        bad_reason.stderr
    );
    let r = cli.json(&[
        "host",
        "revoke",
        "cert.example.com",
        "--reason",
        "superseded",
    ]);
    assert_eq!(r["revoked"], 1);
    let c = cli.json(&["cert", "show", &serial]);
    assert!(
        c["revoked_at"].is_string() && c["status"] != "active",
        "{c}"
    );
}

#[tokio::test]
async fn settings_and_audit_commands_end_to_end() {
    let (app, cli, _dir) = cli_and_app().await;

    // Settings: get, set typed values and lists, and refusals.
    let s = cli.json(&["settings", "get"]);
    assert!(s["certificate_validity_days"].is_number(), "{s}");
    let s = cli.json(&[
        "settings",
        "set",
        "--reason",
        "=HYPERLINK(\"http://evil\")",
        "certificate_validity_days=30",
        "allowed_domains=example.com, example.org",
        "auto_map_host_names=false",
    ]);
    assert_eq!(s["certificate_validity_days"], 30);
    assert_eq!(
        s["allowed_domains"],
        serde_json::json!(["example.com", "example.org"])
    );
    assert_eq!(s["auto_map_host_names"], false);
    let table = cli.ok(&["settings", "get"]);
    assert!(table.contains("example.com,example.org"), "{table}");
    let unknown = cli.run(&["settings", "set", "--reason", "r", "bogus=1"]);
    assert!(
        one_line_error(&unknown).contains("bogus"),
        "{}",
        unknown.stderr
    );
    let no_eq = cli.run(&[
        "settings",
        "set",
        "--reason",
        "r",
        "certificate_validity_days",
    ]);
    assert!(
        one_line_error(&no_eq).contains("KEY=VALUE"),
        "{}",
        no_eq.stderr
    );
    let not_bool = cli.run(&[
        "settings",
        "set",
        "--reason",
        "r",
        "auto_map_host_names=maybe",
    ]);
    assert!(one_line_error(&not_bool).contains("true or false"));
    let out_of_range = cli.run(&[
        "settings",
        "set",
        "--reason",
        "r",
        "certificate_validity_days=-5",
    ]);
    assert!(
        one_line_error(&out_of_range).contains("(4"),
        "{}",
        out_of_range.stderr
    );
    let no_reason = cli.run(&[
        "settings",
        "set",
        "--reason",
        "",
        "certificate_validity_days=31",
    ]);
    assert!(
        one_line_error(&no_reason).contains("(4"),
        "{}",
        no_reason.stderr
    );
    assert_eq!(
        cli.json(&["settings", "get"])["certificate_validity_days"],
        30
    );

    // Audit: a page, and the whole trail as CSV with the console export's columns.
    let page = cli.json(&["audit", "list"]);
    let total = page["total"].as_i64().unwrap();
    assert!(total > 0 && page["events"].as_array().unwrap().len() as i64 <= total);
    let table = cli.ok(&["audit", "list", "--category", "SEC_CONFIG"]);
    assert!(table.starts_with("ID"), "{table}");
    let csv = cli.ok(&["audit", "export"]);
    let console_csv = app.get("/security/audit.csv").await.text().await.unwrap();
    assert_eq!(
        csv.lines().next(),
        console_csv.lines().next(),
        "the same columns as the console's export"
    );
    // Every event up to now, each once (the export itself adds none through the API).
    let rows = csv.lines().count() as i64 - 1;
    assert!(rows >= total, "{rows} rows for {total} events");
    let ids: std::collections::HashSet<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(ids.len() as i64, rows, "no event twice");
    // A reason that a spreadsheet would run as a formula is defused, as on the console.
    assert!(csv.contains("\"'=HYPERLINK("), "{csv}");
    assert!(!csv.contains(",\"=HYPERLINK("), "{csv}");
    let file = app.scratch().join("audit.csv");
    let out = cli.ok(&["audit", "export", "--out", file.to_str().unwrap()]);
    assert!(out.contains("written to"), "{out}");
    assert!(std::fs::read_to_string(&file)
        .unwrap()
        .starts_with("id,at_utc,"));
    let filtered = cli.ok(&["audit", "export", "--category", "SEC_CONFIG"]);
    assert!(filtered.lines().count() >= 2, "{filtered}");
    assert!(
        filtered
            .lines()
            .skip(1)
            .all(|l| l.contains("\"SEC_CONFIG\"")),
        "{filtered}"
    );
    let bad = cli.run(&["audit", "list", "--page", "0"]);
    assert!(one_line_error(&bad).contains("(4"), "{}", bad.stderr);

    // Without a key, every new command fails with one line, before any request.
    for args in [
        vec!["settings", "get"],
        vec!["audit", "export"],
        vec!["host", "show", "web1.example.com"],
    ] {
        let mut all = args.clone();
        all.extend(["--server", &cli.server]);
        let r = hostca(&all, &[]);
        assert!(
            one_line_error(&r).contains("API key"),
            "{args:?}: {}",
            r.stderr
        );
    }
    // A wrong key is refused by the server.
    let wrong = Cli {
        key: "hca_wrong".into(),
        ..cli
    };
    one_line_error(&wrong.run(&["settings", "get"]));
}
