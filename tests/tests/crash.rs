//! Crash and restart: `apply` killed with SIGKILL at random moments of a multi-image apply,
//! then run again, always converges — one image per name, every image in the state, nothing
//! in the cloud the state does not know.

use std::collections::BTreeMap;
use std::time::Instant;

use openstack_image_tests::Scenario;
use rand::Rng;

/// Kill points, each a fresh random moment of a new apply.
const KILLS: usize = 20;

#[test]
fn apply_killed_at_random_moments_always_converges() {
    let s = Scenario::new("crash");
    for file in ["a", "b", "c"] {
        s.qcow2(&format!("{file}.qcow2"), 3);
    }
    let mut rng = rand::rng();
    s.write_spec(&format!(
        "images:\n{}{}{}",
        image(&s, "a", ""),
        image(&s, "b", ""),
        image(&s, "c", "")
    ));
    s.apply();
    // How long an uninterrupted apply of a round's work takes: the kills land inside it.
    let spec = round_spec(&s, "calibration", false);
    s.write_spec(&spec);
    let started = Instant::now();
    s.run(&["apply", "-f", "images.yaml", "--parallel", "2"])
        .expect_code(0);
    let full = started.elapsed();
    converged(&s, 0, &spec);
    let mut killed_with_work_left = 0;
    for round in 0..KILLS {
        // Every round has work of every kind: `a` updated in place, `b` replaced (its file
        // rewritten), `c` created and deleted in turn, `d` created once.
        let spec = round_spec(&s, &round.to_string(), round % 2 == 0);
        s.write_spec(&spec);

        let started = Instant::now();
        let mut child = s
            .command(&["apply", "-f", "images.yaml", "--parallel", "2"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start apply");
        let moment = full.mul_f64(rng.random_range(0.05..0.95));
        std::thread::sleep(moment);
        if child.try_wait().expect("poll apply").is_none() {
            killed_with_work_left += 1;
        }
        let _ = child.kill(); // SIGKILL: no cleanup, no final state write
        child.wait().expect("reap apply");

        let run = s.run(&["apply", "-f", "images.yaml"]);
        assert_eq!(
            run.code,
            0,
            "round {round} (killed after {moment:?} of {:?}): the next apply converges\n{}\n{}",
            started.elapsed(),
            run.stdout,
            run.stderr
        );
        converged(&s, round, &spec);
        s.plan().expect_code(0);
    }
    eprintln!(
        "{killed_with_work_left} of {KILLS} kills landed while apply was working (a round takes {full:?})"
    );
    assert!(
        killed_with_work_left >= KILLS / 2,
        "most kills must land while apply is still working ({killed_with_work_left} of {KILLS})"
    );
}

/// A round's spec: `a` with the property `round: LABEL`, `b` with a new file, `d` (from
/// `a`'s file), and `c` when `with_c`.
fn round_spec(s: &Scenario, label: &str, with_c: bool) -> String {
    s.qcow2("b.qcow2", 3);
    let mut spec = format!(
        "images:\n{}{}{}",
        image(s, "a", &format!("    properties:\n      round: \"{label}\"\n")),
        image(s, "b", ""),
        image(s, "d", "")
    );
    if with_c {
        spec.push_str(&image(s, "c", ""));
    }
    spec.replace("local_file_path: d.qcow2", "local_file_path: a.qcow2")
}

fn image(s: &Scenario, name: &str, extra: &str) -> String {
    format!(
        "  {name}:\n    name: {}\n    container_format: bare\n    disk_format: qcow2\n    local_file_path: {name}.qcow2\n{extra}",
        s.image_name(name)
    )
}

/// One active image per spec entry, the state records exactly the cloud's images, nothing
/// half-made is pending.
fn converged(s: &Scenario, round: usize, spec: &str) {
    let state = s.state().expect("a state file");
    assert!(
        state["creating"].as_object().is_none_or(|c| c.is_empty()),
        "round {round}: {state}"
    );
    let recorded: BTreeMap<String, String> = state["images"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, entry)| {
            assert!(
                entry["deposed"].as_array().is_none_or(|d| d.is_empty()),
                "round {round}: {name} still has replaced images to delete"
            );
            (name.clone(), entry["image"]["id"].as_str().unwrap().to_string())
        })
        .collect();
    let wanted: Vec<&str> = ["a", "b", "c", "d"]
        .into_iter()
        .filter(|n| spec.contains(&format!("\n  {n}:\n")))
        .collect();
    assert_eq!(
        recorded.keys().map(String::as_str).collect::<Vec<_>>(),
        wanted,
        "round {round}: the state holds exactly the spec's images"
    );
    let images = s.cloud_images();
    let mut per_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for image in &images {
        assert_eq!(image["Status"], "active", "round {round}: {image}");
        per_name
            .entry(image["Name"].as_str().unwrap().to_string())
            .or_default()
            .push(image["ID"].as_str().unwrap().to_string());
    }
    for (name, id) in &recorded {
        assert_eq!(
            per_name.remove(&s.image_name(name)),
            Some(vec![id.clone()]),
            "round {round}: exactly one image named for {name}, the recorded one"
        );
    }
    assert!(
        per_name.is_empty(),
        "round {round}: images the state does not know: {per_name:?}"
    );
}
