//! The offline link check: every relative link of README.md and docs/ names a file or
//! directory of the repository, and every `#anchor` a heading of the page it points into
//! (GitHub's anchors). Links with a scheme (https:, mailto:) are not followed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

/// The problems of the links in `pages` (path, text), each naming the page and the link.
pub fn check(root: &Path, pages: &[(PathBuf, String)]) -> Vec<String> {
    let anchors: BTreeMap<PathBuf, BTreeSet<String>> = pages
        .iter()
        .map(|(path, text)| (normal(path), anchors_of(text)))
        .collect();
    let mut problems = Vec::new();
    for (page, text) in pages {
        let shown = super::shown(root, page);
        for link in links_of(text) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = match link.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor)),
                None => (link.as_str(), None),
            };
            let target = if path.is_empty() {
                normal(page)
            } else {
                normal(&page.parent().unwrap_or(root).join(path))
            };
            if !path.is_empty() && !target.exists() {
                problems.push(format!("{shown}: the link `{link}` points to nothing"));
                continue;
            }
            let Some(anchor) = anchor else { continue };
            let known = match anchors.get(&target) {
                Some(known) => known.clone(),
                None if target.extension().is_some_and(|e| e == "md") => std::fs::read_to_string(&target)
                    .map(|t| anchors_of(&t))
                    .unwrap_or_default(),
                // An anchor into a non-Markdown file (a line of code): not checked.
                None => continue,
            };
            if !known.contains(anchor) {
                problems.push(format!(
                    "{shown}: the link `{link}` names no heading of {}",
                    super::shown(root, &target)
                ));
            }
        }
    }
    problems
}

/// `path` without `.` and `..` components (the target need not exist).
fn normal(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn parser(text: &str) -> Parser<'_> {
    Parser::new_ext(text, Options::ENABLE_TABLES | Options::ENABLE_HEADING_ATTRIBUTES)
}

/// The destinations of a page's links and images.
fn links_of(text: &str) -> Vec<String> {
    parser(text)
        .filter_map(|event| match event {
            Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) => {
                Some(dest_url.to_string())
            }
            _ => None,
        })
        .collect()
}

/// The anchors GitHub gives a page's headings: the heading's text lower-cased, everything
/// but letters, digits, spaces, `-` and `_` dropped, spaces made `-`; a repeated one gets
/// `-1`, `-2`, … An explicit `{#id}` is kept as given.
fn anchors_of(text: &str) -> BTreeSet<String> {
    let mut anchors = BTreeSet::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut heading: Option<(String, Option<String>)> = None;
    for event in parser(text) {
        match event {
            Event::Start(Tag::Heading { id, .. }) => {
                heading = Some((String::new(), id.map(|i| i.to_string())))
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some((text, _)) = heading.as_mut() {
                    text.push_str(&t);
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                let Some((text, id)) = heading.take() else {
                    continue;
                };
                if let Some(id) = id {
                    anchors.insert(id);
                    continue;
                }
                let slug = slug(&text);
                let count = seen.entry(slug.clone()).or_insert(0);
                anchors.insert(if *count == 0 {
                    slug.clone()
                } else {
                    format!("{slug}-{count}")
                });
                *count += 1;
            }
            _ => {}
        }
    }
    anchors
}

/// GitHub's anchor for a heading's text.
pub fn slug(text: &str) -> String {
    text.trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_follow_githubs_rule() {
        let page = "# Stores and import methods\n## `--parallel` and --target\n## Limits\n## Limits\n## Why? (FAQ)\n";
        let anchors: Vec<String> = anchors_of(page).into_iter().collect();
        assert_eq!(
            anchors,
            [
                "--parallel-and---target",
                "limits",
                "limits-1",
                "stores-and-import-methods",
                "why-faq"
            ]
        );
    }

    #[test]
    fn broken_files_and_anchors_are_named_and_good_ones_pass() {
        let dir = std::env::temp_dir().join(format!("docs-links-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("docs")).unwrap();
        std::fs::write(dir.join("docs/a.md"), "# Top\n## The cloud\n").unwrap();
        let readme = dir.join("README.md");
        let text = "[ok](docs/a.md) [ok](docs/a.md#the-cloud) [ok](#here) [web](https://example.org/x#y)\n\
                    [gone](docs/b.md) [bad](docs/a.md#nowhere) [self](#nothere)\n\n## Here\n";
        let pages = vec![
            (readme, text.to_string()),
            (dir.join("docs/a.md"), "# Top\n## The cloud\n".into()),
        ];
        let problems = check(&dir, &pages);
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(
            problems[0].contains("`docs/b.md` points to nothing"),
            "{problems:#?}"
        );
        assert!(
            problems[1].contains("`docs/a.md#nowhere` names no heading"),
            "{problems:#?}"
        );
        assert!(
            problems[2].contains("`#nothere` names no heading"),
            "{problems:#?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
