//! A linear scan of a GraphQL document's bracket nesting, run before anything parses it.
//!
//! The GraphQL parser descends recursively into selection sets, argument objects and
//! lists, so a document nested a few thousand levels deep overflows a worker's stack and
//! aborts the process. This scan costs one pass over the bytes, recurses nowhere, and
//! refuses such a document before authentication or parsing spends anything on it.

use crate::error::AppError;

/// The deepest bracket nesting (`{`, `[`, `(`) of `document`, ignoring brackets inside
/// strings, block strings and comments.
pub fn max_nesting(document: &str) -> usize {
    let bytes = document.as_bytes();
    let (mut depth, mut deepest, mut i) = (0usize, 0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    // `\"""` is an escaped triple quote inside a block string.
                    i += if bytes[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i += 2;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    deepest
}

/// `BAD_USER_INPUT` when the document nests deeper than `limit`.
pub fn check(document: &str, limit: usize) -> Result<(), AppError> {
    if max_nesting(document) > limit {
        return Err(AppError::bad_input(format!(
            "the query nests brackets more than {limit} levels deep"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_brackets_outside_strings_and_comments() {
        assert_eq!(max_nesting("{ a { b(x: [1, {y: 2}]) } }"), 5);
        assert_eq!(max_nesting(r#"{ a(s: "{{{{[[[") }"#), 2);
        assert_eq!(max_nesting("{ a # {{{{{{\n }"), 1);
        assert_eq!(max_nesting(r#"{ a(s: """ {{{ \""" {{{ """) }"#), 2);
        assert_eq!(max_nesting(r#"{ a(s: "\"{{{") }"#), 2);
        assert_eq!(max_nesting("}}}{"), 1);
    }

    #[test]
    fn refuses_deep_documents_in_linear_time() {
        let deep = format!("{{ kpis(filter: {}) }}", "{shopIds:".repeat(200_000));
        assert!(check(&deep, 48).is_err());
        let lists = format!("{{ a(x: {}) }}", "[".repeat(100_000));
        assert!(check(&lists, 48).is_err());
        assert!(check("{ viewer { tenant { name } } }", 48).is_ok());
    }
}
