//! `find`: one image by what it is called and carries — the lookup Terraform's
//! `openstack_images_image_v2` data source offers. Glance's list filters narrow the search
//! on the server; `name_regex` and `properties` are applied here; then the rule for zero, one
//! or several matches.

use serde_json::Value;

use crate::glance;
use crate::http::{Transport, status_error};
use crate::lifecycle::{Provider, READ_TIMEOUT};
use crate::types::{Cloud, Error, FieldError, ImageQuery, ImageState};
use openstack_image_documents::spec::{CONTAINER_FORMATS, DISK_FORMATS, VISIBILITIES};

/// Images asked for per page of Glance's list.
const PAGE: u32 = 200;
/// Most pages followed: 20,000 images is past any real search.
const MAX_PAGES: usize = 100;

const MEMBER_STATUSES: &[&str] = &["accepted", "pending", "rejected", "all"];
const SORT_KEYS: &[&str] = &[
    "name",
    "status",
    "container_format",
    "disk_format",
    "size",
    "id",
    "created_at",
    "updated_at",
];

/// A checked query and its compiled name pattern.
pub struct Search {
    query: ImageQuery,
    name_pattern: Option<regex_lite::Regex>,
}

impl Search {
    /// Checks `query`; every problem names its field.
    pub fn new(query: ImageQuery) -> Result<Search, Error> {
        let mut problems = Vec::new();
        let mut problem = |field: &str, message: String| {
            problems.push(FieldError {
                field: field.into(),
                message,
            })
        };
        let one_of = |value: &Option<String>, allowed: &[&str]| {
            value
                .as_deref()
                .filter(|v| !allowed.contains(v))
                .map(|v| format!("'{v}' is not one of: {}", allowed.join(", ")))
        };
        // `all` lists every image the project may see, whatever its visibility.
        if let Some(message) = one_of(&query.visibility, &[VISIBILITIES, &["all"]].concat()) {
            problem("visibility", message);
        }
        if let Some(message) = one_of(&query.member_status, MEMBER_STATUSES) {
            problem("member_status", message);
        }
        if let Some(message) = one_of(&query.container_format, CONTAINER_FORMATS) {
            problem("container_format", message);
        }
        if let Some(message) = one_of(&query.disk_format, DISK_FORMATS) {
            problem("disk_format", message);
        }
        if let (Some(min), Some(max)) = (query.size_min, query.size_max)
            && min > max
        {
            problem("size_min", format!("{min} is larger than size_max {max}"));
        }
        if let Some(sort) = &query.sort
            && let Err(message) = check_sort(sort)
        {
            problem("sort", message);
        }
        let name_pattern = match query.name_regex.as_deref().map(regex_lite::Regex::new) {
            Some(Ok(pattern)) => Some(pattern),
            Some(Err(e)) => {
                problem("name_regex", format!("is not a valid regular expression: {e}"));
                None
            }
            None => None,
        };
        if problems.is_empty() {
            Ok(Search { query, name_pattern })
        } else {
            Err(Error::InvalidSpec(problems))
        }
    }

    /// The query string of the first `GET /v2/images` (Glance's own filters).
    pub fn list_query(&self) -> String {
        let q = &self.query;
        let mut out = url::form_urlencoded::Serializer::new(String::new());
        out.append_pair("limit", &PAGE.to_string());
        let optional = [
            ("name", q.name.clone()),
            ("visibility", q.visibility.clone()),
            ("owner", q.owner.clone()),
            ("member_status", q.member_status.clone()),
            ("container_format", q.container_format.clone()),
            ("disk_format", q.disk_format.clone()),
            ("size_min", q.size_min.map(|n| n.to_string())),
            ("size_max", q.size_max.map(|n| n.to_string())),
            ("os_hidden", q.hidden.map(|h| h.to_string())),
            (
                "sort",
                Some(q.sort.clone().unwrap_or_else(|| "created_at:desc".into())),
            ),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                out.append_pair(key, &value);
            }
        }
        for tag in q.tags.iter().chain(&q.tag) {
            out.append_pair("tag", tag);
        }
        out.finish()
    }

    /// Whether an image Glance listed also passes the filters Glance has not applied.
    pub fn matches(&self, image: &Value) -> bool {
        let name = image.get("name").and_then(Value::as_str).unwrap_or("");
        if self.name_pattern.as_ref().is_some_and(|p| !p.is_match(name)) {
            return false;
        }
        let properties = glance::properties(image);
        self.query
            .properties
            .iter()
            .all(|(key, value)| properties.iter().any(|(k, v)| k == key && v == value))
    }

    /// The one image among `found` (in Glance's order): none is not-found, several need
    /// `most_recent` (then the newest by `created_at` wins).
    pub fn choose(&self, mut found: Vec<Value>) -> Result<Value, Error> {
        match found.len() {
            0 => Err(Error::NotFound(
                "no image matches the query; change or loosen its criteria".into(),
            )),
            1 => Ok(found.remove(0)),
            n if !self.query.most_recent => Err(Error::InvalidSpec(vec![FieldError {
                field: "most_recent".into(),
                message: format!(
                    "{n} images match the query; narrow it (name, tags, properties, …) or set \
                     most_recent to take the newest"
                ),
            }])),
            _ => {
                let created = |image: &Value| {
                    image
                        .get("created_at")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string()
                };
                // RFC 3339 times in UTC sort as text; the first listed wins a tie.
                let newest = found
                    .iter()
                    .enumerate()
                    .max_by(|(i, a), (j, b)| created(a).cmp(&created(b)).then(j.cmp(i)))
                    .map(|(i, _)| i)
                    .expect("several images");
                Ok(found.swap_remove(newest))
            }
        }
    }
}

/// `key[:asc|:desc]`, comma-separated, keys Glance sorts by.
fn check_sort(sort: &str) -> Result<(), String> {
    for part in sort.split(',') {
        let (key, direction) = part.trim().split_once(':').unwrap_or((part.trim(), "asc"));
        if !SORT_KEYS.contains(&key) {
            return Err(format!(
                "cannot sort by '{key}'; use {} (with :asc or :desc)",
                SORT_KEYS.join(", ")
            ));
        }
        if !["asc", "desc"].contains(&direction) {
            return Err(format!("'{part}': the direction is asc or desc"));
        }
    }
    Ok(())
}

impl<T: Transport> Provider<T> {
    /// Finds one image by `query`; see [`Search`].
    pub fn find(&mut self, cloud: &Cloud, query: ImageQuery) -> Result<ImageState, Error> {
        let search = Search::new(query)?;
        let mut op = self.begin(cloud, search.query.region.as_deref(), "find", READ_TIMEOUT)?;
        // Glance's `next` links start at the API root, which is where the endpoint's `/v2` starts.
        let root = op
            .url("")
            .trim_end_matches('/')
            .trim_end_matches("/v2")
            .to_string();
        let mut url = op.url(&format!("/images?{}", search.list_query()));
        let mut found = Vec::new();
        for _ in 0..MAX_PAGES {
            let response = self.call(&mut op, "GET", &url, None)?;
            if response.status != 200 {
                return Err(status_error("GET", &url, &response));
            }
            let page = response.json().map_err(Error::Transport)?;
            let images = page
                .get("images")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            found.extend(images.into_iter().filter(|image| search.matches(image)));
            match page.get("next").and_then(Value::as_str) {
                Some(next) => url = format!("{root}{next}"),
                None => break,
            }
        }
        let image = search.choose(found)?;
        glance::state_from_image(&image, None).map_err(Error::Transport)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn query() -> ImageQuery {
        ImageQuery {
            name: None,
            name_regex: None,
            visibility: None,
            owner: None,
            tags: Vec::new(),
            tag: None,
            properties: Vec::new(),
            size_min: None,
            size_max: None,
            sort: None,
            most_recent: false,
            member_status: None,
            hidden: None,
            container_format: None,
            disk_format: None,
            region: None,
        }
    }

    fn fields(err: Error) -> Vec<String> {
        match err {
            Error::InvalidSpec(fields) => fields.into_iter().map(|f| f.field).collect(),
            other => panic!("expected invalid-spec, got {other:?}"),
        }
    }

    #[test]
    fn bad_queries_name_their_fields() {
        let mut q = query();
        q.visibility = Some("everyone".into());
        q.disk_format = Some("qcow3".into());
        q.size_min = Some(10);
        q.size_max = Some(5);
        q.sort = Some("name:up".into());
        q.name_regex = Some("(".into());
        let err = Search::new(q).err().expect("refused");
        assert_eq!(
            fields(err),
            vec!["visibility", "disk_format", "size_min", "sort", "name_regex"]
        );
    }

    #[test]
    fn glance_filters_go_into_the_query_string() {
        let mut q = query();
        q.name = Some("cirros 0.6".into());
        q.tags = vec!["a".into(), "b&c".into()];
        q.hidden = Some(true);
        q.size_max = Some(100);
        let list = Search::new(q).unwrap().list_query();
        assert_eq!(
            list,
            "limit=200&name=cirros+0.6&size_max=100&os_hidden=true&sort=created_at%3Adesc&tag=a&tag=b%26c"
        );
    }

    #[test]
    fn name_patterns_and_properties_are_matched_here() {
        let mut q = query();
        q.name_regex = Some("^ubuntu-2[24]".into());
        q.properties = vec![("os_distro".into(), "ubuntu".into())];
        let search = Search::new(q).unwrap();
        assert!(search.matches(&json!({"name": "ubuntu-24.04", "os_distro": "ubuntu"})));
        assert!(!search.matches(&json!({"name": "ubuntu-20.04", "os_distro": "ubuntu"})));
        assert!(!search.matches(&json!({"name": "ubuntu-24.04", "os_distro": "debian"})));
        assert!(!search.matches(&json!({"name": "ubuntu-24.04"})));
    }

    #[test]
    fn several_matches_need_most_recent() {
        let images = vec![
            json!({"id": "a", "created_at": "2026-01-02T00:00:00Z"}),
            json!({"id": "b", "created_at": "2026-03-01T00:00:00Z"}),
            json!({"id": "c", "created_at": "2026-02-01T00:00:00Z"}),
        ];
        let strict = Search::new(query()).unwrap();
        assert_eq!(
            fields(strict.choose(images.clone()).unwrap_err()),
            vec!["most_recent"]
        );
        assert!(matches!(strict.choose(Vec::new()), Err(Error::NotFound(_))));
        assert_eq!(strict.choose(images[..1].to_vec()).unwrap()["id"], "a");
        let mut q = query();
        q.most_recent = true;
        assert_eq!(Search::new(q).unwrap().choose(images).unwrap()["id"], "b");
    }
}
