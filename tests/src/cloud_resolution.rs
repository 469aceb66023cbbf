//! The one table of cloud settings every runtime must resolve alike
//! (`tests/fixtures/cloud-resolution.json`): its cases, the environment a runner gives each
//! one, and the check of a runtime's outcome. The CLI's and the Terraform provider's runners
//! are Rust tests; the Node.js and Python adapters read the same file in their own tests.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::root;

/// One case of the table.
pub struct Case {
    pub name: String,
    environment: BTreeMap<String, String>,
    clouds_yaml: Option<String>,
    secure_yaml: Option<String>,
    expect: Option<Value>,
    error: Option<String>,
}

/// Every case of the table.
pub fn cases() -> Vec<Case> {
    let path = root().join("tests/fixtures/cloud-resolution.json");
    let table: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("the table")).expect("JSON");
    table["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|case| Case {
            name: case["name"].as_str().expect("a name").to_string(),
            environment: serde_json::from_value(case["environment"].clone()).expect("an environment"),
            clouds_yaml: case["clouds_yaml"].as_str().map(str::to_string),
            secure_yaml: case["secure_yaml"].as_str().map(str::to_string),
            expect: case.get("expect").cloned(),
            error: case["error"].as_str().map(str::to_string),
        })
        .collect()
}

impl Case {
    /// The case's environment, its clouds.yaml and secure.yaml written into `dir` (named by
    /// `OS_CLIENT_CONFIG_FILE`; `HOME` is `dir` too, so no other clouds.yaml is found).
    pub fn environment(&self, dir: &Path) -> BTreeMap<String, String> {
        let mut environment = self.environment.clone();
        environment.insert("HOME".into(), dir.to_string_lossy().into_owned());
        if let Some(clouds) = &self.clouds_yaml {
            let file = dir.join("clouds.yaml");
            std::fs::write(&file, clouds).expect("write clouds.yaml");
            environment.insert(
                "OS_CLIENT_CONFIG_FILE".into(),
                file.to_string_lossy().into_owned(),
            );
        }
        if let Some(secure) = &self.secure_yaml {
            std::fs::write(dir.join("secure.yaml"), secure).expect("write secure.yaml");
        }
        environment
    }

    /// Asserts that `outcome` — the resolved document with secrets masked, or the error text
    /// — is what the table says, for `runtime`.
    #[track_caller]
    pub fn check(&self, runtime: &str, outcome: Result<Value, String>) {
        match (outcome, &self.expect, &self.error) {
            (Ok(mut resolved), Some(expect), None) => {
                if let Some(cloud) = resolved.get_mut("cloud").and_then(Value::as_object_mut) {
                    cloud.remove("retries");
                }
                assert_eq!(&resolved, expect, "{runtime}: {}", self.name);
            }
            (Err(error), None, Some(expected)) => {
                assert!(
                    error.contains(expected.as_str()),
                    "{runtime}: {}: {error}",
                    self.name
                )
            }
            (outcome, _, _) => panic!("{runtime}: {}: unexpected outcome {outcome:?}", self.name),
        }
    }
}
