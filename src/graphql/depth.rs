//! The query depth limit, with introspection left out of the count.
//!
//! Tools ask for the schema with graphql-js's standard introspection query, whose
//! `ofType` chains nest 15 deep; counted like data fields it exceeds any useful depth
//! limit, and GraphiQL's docs, code generators, Postman and Insomnia could not load the
//! schema. Introspection resolves from memory and its cost is still bounded by the
//! complexity budget and the bracket-nesting scan, so only data fields are counted here.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ServerError, ServerResult, Variables};

/// Refuses documents whose data fields nest deeper than the limit.
pub struct DepthLimit(pub usize);

impl ExtensionFactory for DepthLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(DepthLimitExtension(self.0))
    }
}

struct DepthLimitExtension(usize);

#[async_graphql::async_trait::async_trait]
impl Extension for DepthLimitExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let deepest = document
            .operations
            .iter()
            .map(|(_, op)| data_depth(&document, &op.node.selection_set.node, 0, 0))
            .max()
            .unwrap_or(0);
        if deepest > self.0 {
            return Err(ServerError::new("Query is nested too deep.", None));
        }
        Ok(document)
    }
}

/// Fragment spreads followed at most this deep (a cycle is reported by validation).
const MAX_SPREADS: usize = 64;

/// How deep the data fields under `set` nest, starting at `level`; an introspection
/// field (`__schema`, `__type`, `__typename`) counts as one level and its subtree not.
fn data_depth(doc: &ExecutableDocument, set: &SelectionSet, level: usize, spreads: usize) -> usize {
    if spreads > MAX_SPREADS {
        return level;
    }
    set.items
        .iter()
        .map(|selection| match &selection.node {
            Selection::Field(field) if field.node.name.node.starts_with("__") => level + 1,
            Selection::Field(field) => {
                data_depth(doc, &field.node.selection_set.node, level + 1, spreads)
            }
            Selection::FragmentSpread(spread) => doc
                .fragments
                .get(&spread.node.fragment_name.node)
                .map_or(level, |f| {
                    data_depth(doc, &f.node.selection_set.node, level, spreads + 1)
                }),
            Selection::InlineFragment(inline) => {
                data_depth(doc, &inline.node.selection_set.node, level, spreads)
            }
        })
        .max()
        .unwrap_or(level)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth(query: &str) -> usize {
        let doc = async_graphql::parser::parse_query(query).unwrap();
        doc.operations
            .iter()
            .map(|(_, op)| data_depth(&doc, &op.node.selection_set.node, 0, 0))
            .max()
            .unwrap()
    }

    #[test]
    fn counts_data_fields_through_fragments_and_not_introspection() {
        assert_eq!(depth("{ a { b { c } } }"), 3);
        assert_eq!(depth("{ a { ...F } } fragment F on X { b { c { d } } }"), 4);
        assert_eq!(depth("{ a { ... on X { b } } }"), 2);
        assert_eq!(
            depth("{ __schema { types { fields { type { ofType { ofType { name } } } } } } }"),
            1
        );
        assert_eq!(depth("{ a { __typename } }"), 2);
        // A fragment cycle ends (validation reports it).
        assert!(depth("{ ...A } fragment A on Q { ...B } fragment B on Q { ...A }") < 10);
    }
}
