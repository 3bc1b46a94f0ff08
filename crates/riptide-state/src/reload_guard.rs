//! What a reload refuses before the schema sees the document: configuration that looks
//! cut short. A file being written, truncated by a full disk or emptied by mistake still
//! parses as YAML, and every key it lost would silently fall back to its default (an
//! empty file resets every live setting), so the reloader refuses it and keeps the
//! running generation.
//!
//! "Cut short" is decided against the running generation, file by file and section by
//! section, because only what the service already runs with says what a file held:
//!
//! - **an emptied file**: a file of the running generation that had settings now has
//!   none (empty, only whitespace and comments, or `{}`);
//! - **a lost section**: a non-empty mapping at the first or second level of the running
//!   document (`persistence`, `persistence.tenant`, `warming.manual`, ...) is missing
//!   from the reloaded document, or is no longer a mapping (`persistence:` with nothing
//!   under it, as a file cut after that line reads).
//!
//! YAML that does not parse is refused earlier, by [`ConfigDocument::load`]. A cut that
//! leaves valid YAML and drops only keys deeper in the last section cannot be told from
//! an edit, which is why files should be replaced by rename (editors, ConfigMaps and
//! `mv` do), never rewritten in place. Removing a whole section on purpose is applied
//! by a restart, which reads the file as it is.

use std::path::Path;

use serde_json::Value;

use super::config_doc::{ConfigDocument, ConfigRejection, SourceFile};

/// Levels of the document whose mappings count as sections.
const SECTION_DEPTH: usize = 2;

/// Refuses `next` when it looks cut short compared with the running generation, made of
/// `running_files` merged into `running` (see the module docs).
pub fn check(
    running_files: &[SourceFile],
    running: &Value,
    next: &ConfigDocument,
) -> Result<(), ConfigRejection> {
    for file in running_files.iter().filter(|f| has_settings(&f.value)) {
        let emptied = next
            .files
            .iter()
            .any(|n| n.path == file.path && !has_settings(&n.value));
        if emptied {
            return Err(ConfigRejection {
                file: Some(file.path.clone()),
                key: String::new(),
                reason: "the file holds no settings now (empty, or only whitespace and \
                         comments): refused as a half-written or truncated file, since it \
                         would reset every setting to its default; the running \
                         configuration stays"
                    .to_owned(),
            });
        }
    }
    let mut sections = Vec::new();
    collect_sections(running, "", 1, &mut sections);
    for section in sections {
        let kept = dotted(&next.value, &section).is_some_and(Value::is_object);
        if !kept {
            return Err(ConfigRejection {
                file: defining_file(running_files, &section).map(Path::to_path_buf),
                key: section,
                reason: "this section of the running configuration is missing from the \
                         reloaded files: refused as a half-written or truncated file; the \
                         running configuration stays (to remove a whole section, restart \
                         the service)"
                    .to_owned(),
            });
        }
    }
    Ok(())
}

/// Whether a parsed file sets anything (parsed files are always mappings).
fn has_settings(value: &Value) -> bool {
    value.as_object().is_some_and(|m| !m.is_empty())
}

/// The dotted paths of the non-empty mappings of `node` down to [`SECTION_DEPTH`].
fn collect_sections(node: &Value, path: &str, depth: usize, out: &mut Vec<String>) {
    let Some(map) = node.as_object() else {
        return;
    };
    for (key, child) in map {
        if !has_settings(child) {
            continue;
        }
        let child_path = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        out.push(child_path.clone());
        if depth < SECTION_DEPTH {
            collect_sections(child, &child_path, depth + 1, out);
        }
    }
}

fn dotted<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    key.split('.')
        .try_fold(value, |v, segment| v.as_object()?.get(segment))
}

/// The last running file (in merge order) that held `section`.
fn defining_file<'a>(files: &'a [SourceFile], section: &str) -> Option<&'a Path> {
    files
        .iter()
        .rev()
        .find(|f| dotted(&f.value, section).is_some())
        .map(|f| f.path.as_path())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::json;

    use super::*;

    fn file(name: &str, value: Value) -> SourceFile {
        SourceFile {
            path: PathBuf::from(name),
            value,
        }
    }

    fn running() -> Vec<SourceFile> {
        vec![file(
            "a.yml",
            json!({"log": {"level": "info"}, "persistence": {"cache": {"zstd_level": 3}, "tenant": {}}}),
        )]
    }

    fn check_next(files: Vec<SourceFile>) -> Result<(), ConfigRejection> {
        let running = running();
        let merged = ConfigDocument::from_files(running.clone()).value;
        check(&running, &merged, &ConfigDocument::from_files(files))
    }

    #[test]
    fn edits_and_new_sections_pass() {
        let next = json!({"log": {"level": "debug"}, "persistence": {"cache": {"zstd_level": 5}}, "warming": {"x": 1}});
        assert_eq!(check_next(vec![file("a.yml", next)]), Ok(()));
    }

    #[test]
    fn an_emptied_file_is_refused_naming_it() {
        let err = check_next(vec![file("a.yml", json!({}))]).expect_err("empty");
        assert_eq!(err.file, Some(PathBuf::from("a.yml")));
        assert!(err.reason.contains("no settings"), "{err}");
    }

    #[test]
    fn a_lost_or_emptied_section_is_refused_naming_it() {
        let cut = json!({"log": {"level": "info"}, "persistence": {"cache": null}});
        let err = check_next(vec![file("a.yml", cut)]).expect_err("cut");
        assert_eq!(err.key, "persistence.cache");
        assert_eq!(err.file, Some(PathBuf::from("a.yml")));

        let err = check_next(vec![file("a.yml", json!({"log": {"level": "info"}}))])
            .expect_err("section gone");
        assert_eq!(err.key, "persistence", "the outermost lost section");

        // Moved to another file: still there, so not cut.
        let split = vec![
            file("a.yml", json!({"log": {"level": "info"}})),
            file(
                "b.yml",
                json!({"persistence": {"cache": {"zstd_level": 3}}}),
            ),
        ];
        assert_eq!(check_next(split), Ok(()));
    }

    #[test]
    fn empty_sections_of_the_running_document_may_go() {
        // `persistence.tenant: {}` set nothing, so dropping it changes nothing.
        let next = json!({"log": {"level": "info"}, "persistence": {"cache": {"zstd_level": 3}}});
        assert_eq!(check_next(vec![file("a.yml", next)]), Ok(()));
    }
}
