//! COPY plumbing for the bulk load: the text format's escaping, streaming rows into a
//! table, and dropping and restoring the bulk tables' secondary constraints around it.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

/// Escapes a value for COPY's text format.
pub(super) fn esc(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

pub(super) fn ts(out: &mut String, at: Option<DateTime<Utc>>) {
    match at {
        Some(at) => {
            let _ = write!(out, "{}", at.format("%Y-%m-%d %H:%M:%S%.6f+00"));
        }
        None => out.push_str("\\N"),
    }
}

pub(super) fn opt(out: &mut String, value: Option<&str>) {
    match value {
        Some(v) => esc(out, v),
        None => out.push_str("\\N"),
    }
}

pub(super) fn copy_text(
    conn: &mut PgConnection,
    table: &str,
    columns: &str,
    data: String,
) -> anyhow::Result<()> {
    // Reference tables are small: a plain COPY statement through the raw connection.
    let sql = format!("COPY {table} ({columns}) FROM STDIN");
    copy_raw(conn, &sql, data.as_bytes())
}

/// Streams bytes into `COPY ... FROM STDIN` with Diesel's COPY support.
pub(super) fn copy_raw(conn: &mut PgConnection, sql: &str, data: &[u8]) -> anyhow::Result<()> {
    match sql {
        s if s.starts_with("COPY products") => {
            use crate::db::schema::products::dsl::*;
            diesel::copy_from(products)
                .from_raw_data(
                    (id, shop_id, external_id, title, category, list_price),
                    |w| io_to_diesel(w.write_all(data)),
                )
                .execute(conn)?;
        }
        s if s.starts_with("COPY creators") => {
            use crate::db::schema::creators::dsl::*;
            diesel::copy_from(creators)
                .from_raw_data(
                    (id, platform, external_id, handle, display_name, followers),
                    |w| io_to_diesel(w.write_all(data)),
                )
                .execute(conn)?;
        }
        s if s.starts_with("COPY fx_rates") => {
            use crate::db::schema::fx_rates::dsl::*;
            diesel::copy_from(fx_rates)
                .from_raw_data((day, currency, rate_to_cny), |w| {
                    io_to_diesel(w.write_all(data))
                })
                .execute(conn)?;
        }
        other => anyhow::bail!("no COPY target for {other}"),
    }
    Ok(())
}

/// COPY callbacks must fail with a Diesel error.
pub(super) fn io_to_diesel(result: std::io::Result<()>) -> Result<(), diesel::result::Error> {
    result.map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))
}

/// Index and foreign-key definitions of the bulk tables, dropped for the load.
#[derive(QueryableByName)]
pub(super) struct Definition {
    #[diesel(sql_type = Text)]
    pub(super) drop_sql: String,
    #[diesel(sql_type = Text)]
    pub(super) create_sql: String,
    #[diesel(sql_type = BigInt)]
    pub(super) kind: i64,
}

pub(super) const BULK_TABLES: &str = "'orders','order_items','after_sales','shipments'";

/// Drops the foreign keys and secondary indexes of `tables` (a quoted SQL list),
/// returning their definitions.
pub(super) fn drop_bulk_constraints(
    conn: &mut PgConnection,
    tables: &str,
) -> anyhow::Result<Vec<Definition>> {
    let sql = format!(
        "SELECT format('ALTER TABLE %I DROP CONSTRAINT %I', c.conrelid::regclass::text, c.conname) AS drop_sql,
                format('ALTER TABLE %I ADD CONSTRAINT %I %s', c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid)) AS create_sql,
                1::bigint AS kind
           FROM pg_constraint c
          WHERE c.contype = 'f' AND c.conrelid::regclass::text IN ({tables})
         UNION ALL
         SELECT format('DROP INDEX %I', i.indexname), i.indexdef, 0::bigint
           FROM pg_indexes i
          WHERE i.schemaname = 'public' AND i.tablename IN ({tables})
            AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)"
    );
    let defs: Vec<Definition> = diesel::sql_query(sql).load(conn)?;
    // Keys first (they depend on the unique indexes), then the indexes.
    for def in defs
        .iter()
        .filter(|d| d.kind == 1)
        .chain(defs.iter().filter(|d| d.kind == 0))
    {
        conn.batch_execute(&def.drop_sql)?;
    }
    Ok(defs)
}

pub(super) fn restore_bulk_constraints(
    conn: &mut PgConnection,
    defs: &[Definition],
) -> anyhow::Result<()> {
    for def in defs
        .iter()
        .filter(|d| d.kind == 0)
        .chain(defs.iter().filter(|d| d.kind == 1))
    {
        conn.batch_execute(&def.create_sql)?;
    }
    Ok(())
}
