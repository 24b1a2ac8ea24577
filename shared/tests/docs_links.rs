//! Every relative link and `#anchor` in README.md, docs/*.md and clients/js/README.md
//! resolves: the file or directory exists, and the anchor is a heading of the target page
//! under GitHub's rules (lowercase, spaces to `-`, punctuation other than `-` and `_`
//! dropped, a repeated heading gets `-1`, `-2`, …). A section that moves to another page
//! cannot leave a dead link behind.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

/// GitHub's anchor for a heading's text (the text as rendered: no backticks, link text only).
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// A heading line's text as GitHub renders it: code spans keep their content, links their
/// text, emphasis markers go.
fn rendered(heading: &str) -> String {
    let mut text = String::new();
    let mut rest = heading;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find("](").map(|i| open + i) else {
            break;
        };
        let Some(end) = rest[close..].find(')').map(|i| close + i) else {
            break;
        };
        text.push_str(&rest[..open]);
        text.push_str(&rest[open + 1..close]);
        rest = &rest[end + 1..];
    }
    text.push_str(rest);
    text.replace(['`', '*'], "")
}

/// The lines outside fenced code blocks, with their 1-based numbers.
fn prose(text: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut lines = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            lines.push((index + 1, line));
        }
    }
    lines
}

/// Every anchor a page offers: one per ATX heading, duplicates numbered as GitHub does.
fn anchors(text: &str) -> HashSet<String> {
    let mut seen = HashSet::new();
    for (_, line) in prose(text) {
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let heading = line[hashes..].trim().trim_end_matches('#').trim_end();
        let base = slug(&rendered(heading));
        let mut anchor = base.clone();
        let mut n = 0;
        while seen.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        seen.insert(anchor);
    }
    seen
}

/// Blanks out code spans (a run of backticks up to the next run of the same length), which
/// may cross lines, so that link syntax inside them is not taken for a link.
fn without_code_spans(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '`' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let run = chars[i..].iter().take_while(|c| **c == '`').count();
        let mut j = i + run;
        let mut close = None;
        while j < chars.len() {
            if chars[j] == '`' {
                let other = chars[j..].iter().take_while(|c| **c == '`').count();
                if other == run {
                    close = Some(j);
                    break;
                }
                j += other;
            } else {
                j += 1;
            }
        }
        match close {
            Some(j) => {
                // Keep the line breaks so that line numbers stay right.
                out.extend(
                    chars[i..j + run]
                        .iter()
                        .map(|c| if *c == '\n' { '\n' } else { ' ' }),
                );
                i = j + run;
            }
            None => {
                out.extend(&chars[i..i + run]);
                i += run;
            }
        }
    }
    out
}

/// Every inline link or image target outside code, with its line number.
fn links(text: &str) -> Vec<(usize, String)> {
    let prose: String = {
        let kept: HashSet<usize> = prose(text).into_iter().map(|(n, _)| n).collect();
        text.lines()
            .enumerate()
            .map(|(i, line)| if kept.contains(&(i + 1)) { line } else { "" })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let plain = without_code_spans(&prose);
    let mut found = Vec::new();
    for (index, line) in plain.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let end = after.find(')').unwrap_or(after.len());
            let target = after[..end].split_whitespace().next().unwrap_or("");
            found.push((index + 1, target.trim_matches(['<', '>']).to_owned()));
            rest = &after[end..];
        }
    }
    found
}

/// `a/b/../c` → `a/c`, without touching the file system.
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// The broken links of `pages` (paths relative to the repository root), given what
/// exists and what each Markdown file holds.
fn broken(
    pages: &[PathBuf],
    exists: impl Fn(&Path) -> bool,
    read: impl Fn(&Path) -> Option<String>,
) -> Vec<String> {
    let mut errors = Vec::new();
    for page in pages {
        let text = read(page).unwrap_or_else(|| panic!("{} is missing", page.display()));
        let dir = page.parent().unwrap_or(Path::new(""));
        for (line, target) in links(&text) {
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                if target.is_empty() {
                    errors.push(format!("{}:{line}: an empty link", page.display()));
                }
                continue;
            }
            let (file, anchor) = match target.split_once('#') {
                Some((file, anchor)) => (file, Some(anchor)),
                None => (target.as_str(), None),
            };
            let resolved = if file.is_empty() {
                page.clone()
            } else {
                normalise(&dir.join(file))
            };
            if !exists(&resolved) {
                errors.push(format!(
                    "{}:{line}: {target}: {} does not exist",
                    page.display(),
                    resolved.display()
                ));
                continue;
            }
            let Some(anchor) = anchor else { continue };
            if resolved.extension().is_some_and(|e| e == "md") {
                let offered = read(&resolved).map(|t| anchors(&t)).unwrap_or_default();
                if !offered.contains(anchor) {
                    errors.push(format!(
                        "{}:{line}: {target}: {} has no heading with the anchor #{anchor}",
                        page.display(),
                        resolved.display()
                    ));
                }
            }
        }
    }
    errors
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn every_link_and_anchor_in_the_docs_resolves() {
    let root = root();
    let mut pages = vec![
        PathBuf::from("README.md"),
        PathBuf::from("clients/js/README.md"),
    ];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .map(|entry| PathBuf::from("docs").join(entry.unwrap().file_name()))
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    assert!(docs.len() >= 5, "docs/ holds only {docs:?}");
    pages.extend(docs);
    let errors = broken(
        &pages,
        |path| root.join(path).exists(),
        |path| std::fs::read_to_string(root.join(path)).ok(),
    );
    assert!(errors.is_empty(), "broken links:\n{}", errors.join("\n"));
}

#[test]
fn slugs_follow_githubs_rules() {
    assert_eq!(slug("Run it"), "run-it");
    assert_eq!(
        slug(&rendered("The operator CLI: `switchboard`")),
        "the-operator-cli-switchboard"
    );
    assert_eq!(
        slug(&rendered("Scale: virtual connections and AWS's quotas")),
        "scale-virtual-connections-and-awss-quotas"
    );
    assert_eq!(
        slug(&rendered("Application → client (SQS message bodies)")),
        "application--client-sqs-message-bodies"
    );
    assert_eq!(slug(&rendered("Traces (X-Ray)")), "traces-x-ray");
    assert_eq!(
        slug("MAX_GROUPS per_connection"),
        "max_groups-per_connection"
    );
    assert_eq!(
        slug(&rendered("See [the page](docs/x.md) **now**")),
        "see-the-page-now"
    );
    let text = "# Title\n## Notes\n```sh\n# not a heading\n```\n## Notes\n### Notes #\n";
    let offered = anchors(text);
    let expected: HashSet<String> = ["title", "notes", "notes-1", "notes-2"]
        .map(String::from)
        .into();
    assert_eq!(offered, expected);
}

#[test]
fn a_broken_file_or_anchor_is_found() {
    let files = [
        (
            "README.md",
            "# Top\n\nSee [a](docs/a.md#second-part), [b](docs/b.md), [c](#top), \
             [d](docs/a.md#missing), [e](#nowhere) and [web](https://example.com/#x).\n\
             `[not a link](nowhere.md)` and\n```\n[nor this](nowhere.md)\n```\n",
        ),
        (
            "docs/a.md",
            "# A\n\n## Second part\n\nBack [up](../README.md#top), [gone](../gone.md).\n",
        ),
    ];
    let read = |path: &Path| {
        files
            .iter()
            .find(|(name, _)| Path::new(name) == path)
            .map(|(_, text)| text.to_string())
    };
    let exists = |path: &Path| read(path).is_some() || path == Path::new("docs");
    let pages = [PathBuf::from("README.md"), PathBuf::from("docs/a.md")];
    let errors = broken(&pages, exists, read);
    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert!(
        errors[0].contains("docs/b.md does not exist"),
        "{errors:#?}"
    );
    assert!(errors[1].contains("#missing"), "{errors:#?}");
    assert!(errors[2].contains("#nowhere"), "{errors:#?}");
    assert!(
        errors[3].starts_with("docs/a.md:5: ../gone.md"),
        "{errors:#?}"
    );
}
