//! JSON-patch building: the operations always apply to the image they were built from, and
//! once applied, building again yields nothing (the image matches the spec).

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use openstack_image_fuzz::Spec;
use openstack_image_guest::{patch, validate};
use serde_json::{Map, Value, json};

#[derive(Debug, Arbitrary)]
struct Input {
    /// Glance's image as it is: keys with string, number or boolean values.
    current: Vec<(String, Scalar)>,
    current_tags: Option<Vec<String>>,
    desired: Spec,
    /// Property keys the prior spec managed.
    managed: Vec<String>,
}

#[derive(Debug, Arbitrary)]
enum Scalar {
    Text(String),
    Number(u64),
    Flag(bool),
    Null,
}

fuzz_target!(|input: Input| {
    let mut image = Map::new();
    for (key, value) in &input.current {
        let value = match value {
            Scalar::Text(t) => json!(t),
            Scalar::Number(n) => json!(n),
            Scalar::Flag(b) => json!(b),
            Scalar::Null => Value::Null,
        };
        image.insert(key.clone(), value);
    }
    if let Some(tags) = &input.current_tags {
        image.insert("tags".into(), json!(tags));
    }
    let mut current = Value::Object(image);
    // Specs reach the patch only after `check`, and the managed keys are those of an
    // earlier checked spec.
    let Ok(desired) = validate::check(input.desired.to_spec()) else {
        return;
    };
    let mut earlier = desired.clone();
    earlier.properties = input.managed.iter().map(|k| (k.clone(), String::new())).collect();
    if validate::check(earlier).is_err() {
        return;
    }
    let ops = patch::build(&current, &desired, &input.managed);
    let patch: json_patch::Patch = serde_json::from_value(Value::Array(ops.clone()))
        .unwrap_or_else(|e| panic!("not a JSON patch ({e}): {ops:?}"));
    json_patch::patch(&mut current, &patch).unwrap_or_else(|e| panic!("does not apply ({e}): {ops:?}"));
    let again = patch::build(&current, &desired, &input.managed);
    assert!(again.is_empty(), "not converged after {ops:?}: still {again:?}");
});
