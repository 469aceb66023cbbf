//! One component, every runtime: the very `.wasm` the bundled host embeds (written out with
//! `openstack-image component export`) completes a create → read → update → delete cycle
//! against the dev cloud under the bundled host, the stock `wasmtime` CLI, Node.js
//! (adapters/node, via jco) and Python (adapters/python, via wasmtime-py), each checked by the
//! observer. Plus what keeps it portable: it imports nothing but standard WASI 0.2, and its
//! embedded WIT is the one in wit/image.wit.

use std::path::{Path, PathBuf};
use std::process::Command;

use openstack_image_tests::{Run, Scenario, cloud_env, observer, root};
use serde_json::{Value, json};

/// The embedded component, written out by the binary under test.
fn exported_component(s: &Scenario) -> PathBuf {
    let path = s.path("openstack-image.wasm");
    s.run(&["component", "export", path.to_str().unwrap()])
        .expect_code(0);
    path
}

/// A raw image of random bytes in `dir`.
fn raw_image(dir: &Path, name: &str, bytes: usize) -> PathBuf {
    let data: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    let path = dir.join(name);
    std::fs::write(&path, data).expect("write image data");
    path
}

/// The dev cloud as a clouds.yaml cloud entry (the JSON face's `cloud` document).
fn cloud_doc() -> Value {
    let env = cloud_env();
    let var = |name: &str| env.get(name).cloned().unwrap_or_default();
    json!({
        "auth": {
            "auth_url": var("OS_AUTH_URL"),
            "username": var("OS_USERNAME"),
            "password": var("OS_PASSWORD"),
            "project_name": var("OS_PROJECT_NAME"),
            "user_domain_name": var("OS_USER_DOMAIN_NAME"),
            "project_domain_name": var("OS_PROJECT_DOMAIN_NAME"),
        },
        "region_name": var("OS_REGION_NAME"),
        "interface": var("OS_INTERFACE"),
    })
}

/// The property `key` of an image as the observer shows it.
fn observed_property(image: &Value, key: &str) -> Option<String> {
    image["properties"][key].as_str().map(str::to_string)
}

fn observed_tags(image: &Value) -> Vec<String> {
    let mut tags: Vec<String> = image["tags"]
        .as_array()
        .map(|t| t.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    tags.sort();
    tags
}

#[test]
fn the_bundled_host_runs_the_exported_file() {
    let s = Scenario::new("rt-host");
    let component = exported_component(&s);
    let component = component.to_str().unwrap();
    raw_image(&s.path(""), "disk.raw", 3 << 20);
    let name = s.image_name("host");
    let spec = |value: &str, tags: &str| {
        s.write_spec(&format!(
            "images:\n  host:\n    name: {name}\n    container_format: bare\n    disk_format: raw\n    local_file_path: disk.raw\n    properties: {{ stage: {value} }}\n    tags: [{tags}]\n"
        ))
    };
    let run = |args: &[&str]| {
        let mut all = vec!["--component", component];
        all.extend_from_slice(args);
        s.run(&all)
    };

    // create
    spec("one", "a");
    run(&["apply", "-f", "images.yaml"]).expect_code(0);
    let id = s.state_id("host");
    let image = observer::image(&id).expect("created");
    assert_eq!(image["status"], "active");
    assert_eq!(image["size"], 3 << 20);
    assert_eq!(observed_property(&image, "stage").as_deref(), Some("one"));
    // read
    run(&["refresh", "-f", "images.yaml"]).expect_code(0);
    let show = run(&["show", "-f", "images.yaml"]).expect_code(0);
    assert!(show.stdout.contains(&id), "{}", show.stdout);
    // update
    spec("two", "b, c");
    run(&["apply", "-f", "images.yaml"]).expect_code(0);
    assert_eq!(s.state_id("host"), id, "updated in place");
    let image = observer::image(&id).expect("still there");
    assert_eq!(observed_property(&image, "stage").as_deref(), Some("two"));
    assert_eq!(observed_tags(&image), ["b", "c"]);
    // delete
    run(&["destroy", "-f", "images.yaml"]).expect_code(0);
    assert!(observer::image(&id).is_none(), "deleted");
}

/// The stock `wasmtime run`: `WASMTIME`, or the workspace's build of it (tools/wasmtime-cli,
/// the wasmtime-cli crate's own RunCommand), built beside the host by scripts/test.
fn wasmtime() -> PathBuf {
    let path = std::env::var_os("WASMTIME")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/release/wasmtime"));
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build --release -p openstack-image-wasmtime-cli` (scripts/test does), or set WASMTIME to a wasmtime {} CLI",
        path.display(),
        host_wasmtime_version()
    );
    path
}

/// The wasmtime version the bundled host is built with (from Cargo.lock).
fn host_wasmtime_version() -> String {
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).expect("read Cargo.lock");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == "name = \"wasmtime\"" {
            let version = lines.next().expect("a version line");
            return version
                .trim_start_matches("version = \"")
                .trim_end_matches('"')
                .to_string();
        }
    }
    panic!("Cargo.lock has no wasmtime package");
}

/// A WAVE string literal (`--invoke` arguments are WAVE values).
fn wave_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\'' => out.push_str("\\'"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Reads the WAVE string literal at the start of `text`; returns it and the rest.
fn unwave_string(text: &str) -> (String, &str) {
    let body = text
        .strip_prefix('"')
        .unwrap_or_else(|| panic!("not a WAVE string: {text}"));
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return (out, &body[i + 1..]),
            '\\' => match chars.next().expect("an escape").1 {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'u' => {
                    let mut hex = String::new();
                    for (_, h) in chars.by_ref() {
                        match h {
                            '{' => {}
                            '}' => break,
                            h => hex.push(h),
                        }
                    }
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap());
                }
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    panic!("unterminated WAVE string: {text}");
}

/// `wasmtime run -S http --dir ... --invoke 'FUNC("REQUEST")' COMPONENT`: the JSON document
/// returned, or the error document.
fn invoke(
    component: &Path,
    dirs: &[(&Path, &str)],
    func: &str,
    request: Option<&Value>,
) -> Result<Value, Value> {
    let call = match request {
        Some(request) => format!("{func}({})", wave_string(&request.to_string())),
        None => format!("{func}()"),
    };
    let mut command = Command::new(wasmtime());
    command.args(["run", "-S", "http"]);
    for (host, guest) in dirs {
        command.arg("--dir").arg(format!("{}::{guest}", host.display()));
    }
    command
        .arg("--invoke")
        .arg(&call)
        .arg(component)
        .env_clear()
        .env("HOME", std::env::var_os("HOME").unwrap_or_default());
    let run = Run::from(command.output().expect("run wasmtime"));
    assert_eq!(
        run.code, 0,
        "wasmtime {func} failed: {}\n{}",
        run.stdout, run.stderr
    );
    let printed = run.stdout.trim();
    let (outcome, literal) = if let Some(rest) = printed.strip_prefix("ok(") {
        (true, rest)
    } else if let Some(rest) = printed.strip_prefix("err(") {
        (false, rest)
    } else {
        (true, printed)
    };
    let (text, rest) = unwave_string(literal);
    assert!(
        rest.is_empty() || rest == ")",
        "unexpected output after the result: {printed}"
    );
    let value: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{func} returned non-JSON ({e}): {text}"));
    if outcome { Ok(value) } else { Err(value) }
}

#[test]
fn the_stock_wasmtime_cli_runs_a_full_cycle_on_the_json_face() {
    let version = Command::new(wasmtime())
        .arg("--version")
        .output()
        .expect("wasmtime --version");
    let version = String::from_utf8_lossy(&version.stdout).to_string();
    assert!(
        version.contains(&host_wasmtime_version()),
        "the wasmtime CLI ({}) is not the version the host uses ({})",
        version.trim(),
        host_wasmtime_version()
    );

    let s = Scenario::new("rt-wasmtime");
    let component = exported_component(&s);
    let images = s.path("images");
    std::fs::create_dir(&images).unwrap();
    raw_image(&images, "disk.raw", 2 << 20);
    let dirs = [(images.as_path(), "/images")];
    let name = s.image_name("cli");

    // The schema says what forces a replacement; check fills defaults; bad input names its field.
    let schema = invoke(&component, &[], "schema", None).expect("schema");
    assert_eq!(
        schema["$defs"]["spec"]["properties"]["disk_format"]["x-force-new"],
        true
    );
    assert_eq!(
        schema["$defs"]["state"]["properties"]["checksum"]["x-computed"],
        true
    );
    let spec = json!({
        "name": name,
        "container_format": "bare",
        "disk_format": "raw",
        "local_file_path": "/images/disk.raw",
        "properties": { "stage": "one" },
        "tags": ["a"],
    });
    let checked = invoke(&component, &dirs, "check-json", Some(&json!({ "spec": spec }))).expect("check");
    assert_eq!(checked["spec"]["visibility"], "private", "{checked}");
    let bad = invoke(
        &component,
        &dirs,
        "check-json",
        Some(&json!({ "spec": { "container_format": "bare", "disk_format": "floppy" } })),
    )
    .expect_err("a bad disk_format");
    assert_eq!(bad["kind"], "invalid-spec");
    assert_eq!(bad["fields"][0]["field"], "disk_format", "{bad}");

    // create
    let state = invoke(
        &component,
        &dirs,
        "create-json",
        Some(&json!({ "cloud": cloud_doc(), "spec": spec })),
    )
    .expect("create");
    let id = state["id"].as_str().expect("an id").to_string();
    let guard = Cleanup(id.clone());
    assert_eq!(state["status"], "active");
    let image = observer::image(&id).expect("created");
    assert_eq!(image["status"], "active");
    assert_eq!(image["name"], name);
    assert_eq!(image["size"], 2 << 20);
    assert_eq!(
        image["checksum"],
        openstack_image_tests::digest("md5sum", &images.join("disk.raw"))
    );
    assert_eq!(observed_property(&image, "stage").as_deref(), Some("one"));
    assert!(!state.to_string().contains(cloud_env()["OS_PASSWORD"].as_str()));

    // read
    let read = invoke(
        &component,
        &[],
        "read-json",
        Some(&json!({ "cloud": cloud_doc(), "id": id, "state": state })),
    )
    .expect("read");
    assert_eq!(read["id"], id);
    assert_eq!(read["checksum"], image["checksum"]);
    assert_eq!(read["properties"]["stage"], "one");

    // diff: a property is updated in place, a disk_format change replaces
    let changed = json!({ "name": name, "container_format": "bare", "disk_format": "raw", "local_file_path": "/images/disk.raw",
        "properties": { "stage": "two" }, "tags": ["b", "c"] });
    let plan = invoke(
        &component,
        &dirs,
        "diff-json",
        Some(&json!({ "spec": changed, "state": read })),
    )
    .expect("diff");
    assert_eq!(plan["action"], "update", "{plan}");
    assert_eq!(plan["replaces"], json!([]));
    // Another container (the data is raw either way: its bytes decide disk_format).
    let mut reformatted = changed.clone();
    reformatted["container_format"] = json!("ovf");
    let plan = invoke(
        &component,
        &dirs,
        "diff-json",
        Some(&json!({ "spec": reformatted, "state": read })),
    )
    .expect("diff");
    assert_eq!(plan["action"], "replace", "{plan}");
    assert_eq!(plan["replaces"], json!(["container_format"]));

    // update
    let updated = invoke(
        &component,
        &[],
        "update-json",
        Some(&json!({ "cloud": cloud_doc(), "state": read, "spec": changed })),
    )
    .expect("update");
    assert_eq!(updated["id"], id);
    let image = observer::image(&id).expect("still there");
    assert_eq!(observed_property(&image, "stage").as_deref(), Some("two"));
    assert_eq!(observed_tags(&image), ["b", "c"]);

    // delete (twice: an image already gone counts as deleted)
    for _ in 0..2 {
        let deleted = invoke(
            &component,
            &[],
            "delete-json",
            Some(&json!({ "cloud": cloud_doc(), "id": id })),
        )
        .expect("delete");
        assert_eq!(deleted["deleted"], true);
        assert!(observer::image(&id).is_none(), "deleted");
    }
    let gone = invoke(
        &component,
        &[],
        "read-json",
        Some(&json!({ "cloud": cloud_doc(), "id": id })),
    )
    .expect("read");
    assert_eq!(gone, Value::Null);
    drop(guard);

    // A file outside the granted directories is not there for the component.
    let outside =
        invoke(&component, &[], "check-json", Some(&json!({ "spec": spec }))).expect_err("no --dir");
    assert_eq!(outside["fields"][0]["field"], "local_file_path", "{outside}");
}

/// Deletes an image by id when a test fails half-way.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if observer::image(&self.0).is_some() {
            let _ = observer::openstack(&["image", "delete", &self.0]);
        }
    }
}

/// Runs an adapter's test script with the dev cloud's settings.
fn adapter_test(script: &str, component: &Path) {
    let out = Command::new("bash")
        .arg(root().join(script))
        .arg(component)
        .current_dir(root())
        .envs(cloud_env())
        .output()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    let run = Run::from(out);
    assert_eq!(
        run.code, 0,
        "{script} failed\nstdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    eprintln!("{script}:\n{}\n{}", run.stdout, run.stderr);
}

#[test]
fn node_runs_it_as_a_pulumi_dynamic_provider() {
    let s = Scenario::new("rt-node");
    adapter_test("adapters/node/test.sh", &exported_component(&s));
}

#[test]
fn python_runs_it_with_wasmtime_py() {
    let s = Scenario::new("rt-python");
    adapter_test("adapters/python/test.sh", &exported_component(&s));
}

#[test]
fn the_component_imports_only_standard_wasi_and_embeds_this_wit() {
    let s = Scenario::new("rt-wit");
    let bytes = std::fs::read(exported_component(&s)).unwrap();
    let wit_parser::decoding::DecodedWasm::Component(decoded, world) =
        wit_parser::decoding::decode(&bytes).expect("decode the component")
    else {
        panic!("the exported file is not a component");
    };

    let mut source = wit_parser::Resolve::default();
    let (package, _) = source.push_path(root().join("wit")).expect("parse wit/");
    let package_name = source.packages[package].name.clone();
    let expected_world = source
        .select_world(&[package], Some("image-provider"))
        .expect("world image-provider");

    // Imports: standard WASI 0.2 interfaces only.
    for (key, item) in &decoded.worlds[world].imports {
        let name = match item {
            wit_parser::WorldItem::Interface { id, .. } => {
                decoded.id_of(*id).unwrap_or_else(|| decoded.name_world_key(key))
            }
            other => panic!(
                "the component imports a bare item {}: {other:?}",
                decoded.name_world_key(key)
            ),
        };
        let (package, version) = name.split_once('@').unwrap_or((&name, ""));
        if let wit_parser::WorldItem::Interface { id, .. } = item
            && package == "openstack:image/types"
        {
            // The exports' own type definitions: no functions, nothing the runtime provides.
            assert!(
                decoded.interfaces[*id].functions.is_empty(),
                "{name} has functions"
            );
            continue;
        }
        assert!(package.starts_with("wasi:"), "non-WASI import {name}");
        assert!(version.starts_with("0.2."), "import {name} is not WASI 0.2");
    }

    // Exports: exactly the world's interfaces, same package version, same functions.
    let interfaces =
        |resolve: &wit_parser::Resolve, world: wit_parser::WorldId| -> Vec<(String, Vec<String>)> {
            let mut out: Vec<(String, Vec<String>)> = resolve.worlds[world]
                .exports
                .values()
                .map(|item| match item {
                    wit_parser::WorldItem::Interface { id, .. } => {
                        let functions = resolve.interfaces[*id]
                            .functions
                            .values()
                            .map(|f| {
                                let params: Vec<&str> = f.params.iter().map(|p| p.name.as_str()).collect();
                                format!("{}({}) -> {}", f.name, params.join(", "), f.result.is_some())
                            })
                            .collect();
                        (resolve.id_of(*id).expect("a named interface"), functions)
                    }
                    other => panic!("unexpected export {other:?}"),
                })
                .collect();
            out.sort();
            out
        };
    let embedded = interfaces(&decoded, world);
    let expected = interfaces(&source, expected_world);
    assert_eq!(
        embedded, expected,
        "the component's exports differ from wit/image.wit"
    );
    let version = package_name
        .version
        .as_ref()
        .expect("wit/image.wit has a package version")
        .to_string();
    for (name, _) in &embedded {
        assert!(
            name.ends_with(&format!("@{version}")),
            "{name} is not version {version}"
        );
    }
    assert!(
        embedded
            .iter()
            .any(|(n, _)| n == &format!("openstack:image/resource@{version}"))
    );
    assert!(
        embedded
            .iter()
            .any(|(n, _)| n == &format!("openstack:image/lifecycle@{version}"))
    );
}
