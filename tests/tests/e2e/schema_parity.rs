//! The two migration folders define the same schema: a fresh SQLite database and a fresh
//! PostgreSQL database, each migrated by the host, are introspected and compared fact by fact —
//! tables and views, columns (name, NOT NULL, a coarse type class), primary keys, foreign keys
//! (columns → table.columns, ON DELETE/UPDATE), unique constraints, indexes (name, uniqueness,
//! columns with their order, partial or not), the number of CHECK constraints per table, and
//! which row events of which table a trigger guards.
//!
//! Types are compared only by class (integer, text, blob, real, …): INTEGER and BIGINT, BLOB
//! and BYTEA differ by design. Triggers are compared by (table, timing, event), not by name:
//! SQLite has one trigger per event (`audit_log_no_update`, `audit_log_no_delete`) where
//! PostgreSQL has one for both (`audit_log_no_change`). A partial index's predicate is not
//! compared (PostgreSQL rewrites it), only that there is one. `_sqlx_migrations` and SQLite's
//! own `sqlite_*` tables are not part of the schema.
//!
//! The differences accepted today are listed in [`KNOWN`], each with its reason; the test fails
//! on any other difference, and on a known one that has gone.

use std::collections::{BTreeMap, BTreeSet};

use dealer_tests::{Backend, TestDb};
use sqlx::AnyPool;

/// Facts about the schema, by the table they belong to; a fact is a line of text such as
/// `column phone NOT NULL text`.
type Schema = BTreeMap<String, BTreeSet<String>>;

const IGNORED_TABLES: [&str; 1] = ["_sqlx_migrations"];

/// The customer name search index is each backend's own: on SQLite an FTS5 table (with its
/// shadow tables, and the triggers on `customers` that keep it in step), all named with this
/// prefix; on PostgreSQL a pg_trgm index, [`POSTGRES_NAME_INDEX`]. Neither has the other's.
const SQLITE_NAME_INDEX: &str = "customers_name_fts";
const POSTGRES_NAME_INDEX: &str = "customers_name_trgm";

/// A difference the migrations have and the test accepts, with why. Each must still be there:
/// when one is fixed, remove it here.
struct Known {
    table: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
    reason: &'static str,
}

/// SQLite lets the primary key column of a rowid table hold NULL unless it is an INTEGER
/// PRIMARY KEY (the rowid) or declared NOT NULL (a documented SQLite quirk kept for
/// compatibility); PostgreSQL's primary key implies NOT NULL. These keys are declared
/// `BIGINT PRIMARY KEY` / `TEXT PRIMARY KEY` without NOT NULL in the SQLite migrations that
/// databases in the field have run; the host always writes them, and making SQLite refuse NULL
/// needs a table rebuild, not an additive migration.
const NULLABLE_SQLITE_KEY: &str = "SQLite primary key without NOT NULL (takes NULL on SQLite only)";

const KNOWN: [Known; 7] = [
    Known {
        table: "lead_assignment_cursor",
        sqlite: "column dealer_id NULL integer",
        postgres: "column dealer_id NOT NULL integer",
        reason: NULLABLE_SQLITE_KEY,
    },
    Known {
        table: "loyalty_accounts",
        sqlite: "column customer_id NULL integer",
        postgres: "column customer_id NOT NULL integer",
        reason: NULLABLE_SQLITE_KEY,
    },
    Known {
        table: "network_policy",
        sqlite: "column id NULL integer",
        postgres: "column id NOT NULL integer",
        reason: NULLABLE_SQLITE_KEY,
    },
    Known {
        table: "plugin_artifacts",
        sqlite: "column sha256 NULL text",
        postgres: "column sha256 NOT NULL text",
        reason: NULLABLE_SQLITE_KEY,
    },
    Known {
        table: "plugin_dealer_switches",
        sqlite: "column dealer_id NULL integer",
        postgres: "column dealer_id NOT NULL integer",
        reason: NULLABLE_SQLITE_KEY,
    },
    Known {
        table: "points_lots",
        sqlite: "column ledger_id NULL integer",
        postgres: "column ledger_id NOT NULL integer",
        reason: NULLABLE_SQLITE_KEY,
    },
    Known {
        table: "vehicle_care",
        sqlite: "column vehicle_id NULL integer",
        postgres: "column vehicle_id NOT NULL integer",
        reason: NULLABLE_SQLITE_KEY,
    },
];

/// Takes the [`KNOWN`] differences out of both schemas; panics naming any that is gone.
fn remove_known(sqlite: &mut Schema, postgres: &mut Schema) {
    let mut gone = Vec::new();
    for known in &KNOWN {
        let in_sqlite = sqlite
            .get_mut(known.table)
            .is_some_and(|facts| facts.remove(known.sqlite));
        let in_postgres = postgres
            .get_mut(known.table)
            .is_some_and(|facts| facts.remove(known.postgres));
        if !(in_sqlite && in_postgres) {
            gone.push(format!(
                "  {}: SQLite `{}` / PostgreSQL `{}` ({})",
                known.table, known.sqlite, known.postgres, known.reason
            ));
        }
    }
    assert!(
        gone.is_empty(),
        "these known differences are not there any more: remove them from KNOWN\n{}",
        gone.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_postgresql_migrations_define_the_same_schema() {
    let sqlite = TestDb::new(Backend::Sqlite).await;
    let postgres = TestDb::new(Backend::Postgres).await;
    let mut sqlite_schema = sqlite_schema(sqlite.db.pool()).await;
    let mut postgres_schema = postgres_schema(postgres.db.pool()).await;
    assert!(
        sqlite_schema.len() >= 20 && postgres_schema.len() >= 20,
        "the introspection found too few tables (SQLite {}, PostgreSQL {}): it is broken",
        sqlite_schema.len(),
        postgres_schema.len()
    );
    // An introspection query that finds nothing on both backends would agree vacuously.
    for (backend, schema) in [("SQLite", &sqlite_schema), ("PostgreSQL", &postgres_schema)] {
        for kind in [
            "column ",
            "primary key ",
            "foreign key ",
            "unique constraint ",
            "index ",
            "CHECK constraints",
            "trigger ",
        ] {
            let found = schema
                .values()
                .flatten()
                .filter(|f| f.starts_with(kind))
                .count();
            assert!(
                found > 0,
                "no `{kind}` found on {backend}: the introspection is broken"
            );
        }
    }
    remove_known(&mut sqlite_schema, &mut postgres_schema);
    let differences = differences(&sqlite_schema, &postgres_schema);
    assert!(
        differences.is_empty(),
        "the SQLite and PostgreSQL migrations define different schemas (add a migration to \
         both folders to fix it):\n{}",
        differences.join("\n")
    );
}

/// One line per difference, naming the table, the fact and the backend that has it.
fn differences(sqlite: &Schema, postgres: &Schema) -> Vec<String> {
    let mut lines = Vec::new();
    let tables: BTreeSet<&String> = sqlite.keys().chain(postgres.keys()).collect();
    for table in tables {
        match (sqlite.get(table), postgres.get(table)) {
            (Some(_), None) => lines.push(format!("  only in SQLite:     table {table}")),
            (None, Some(_)) => lines.push(format!("  only in PostgreSQL: table {table}")),
            (Some(s), Some(p)) => {
                for fact in s.difference(p) {
                    lines.push(format!("  only in SQLite:     {table}: {fact}"));
                }
                for fact in p.difference(s) {
                    lines.push(format!("  only in PostgreSQL: {table}: {fact}"));
                }
            }
            (None, None) => unreachable!("{table} came from one of them"),
        }
    }
    lines
}

/// A row of `pragma_foreign_key_list`: id, seq, table, from, to, on_update, on_delete.
type SqliteForeignKey = (i64, i64, String, String, Option<String>, String, String);

fn add(schema: &mut Schema, table: &str, fact: String) {
    schema.entry(table.to_owned()).or_default().insert(fact);
}

fn not_null(not_null: bool) -> &'static str {
    if not_null { "NOT NULL" } else { "NULL" }
}

/// The class of a SQLite declared type, by SQLite's affinity rules (BOOLEAN and the
/// date/time names kept apart: they have NUMERIC affinity but say what the column holds).
fn sqlite_type_class(declared: &str) -> &'static str {
    let t = declared.to_ascii_uppercase();
    if t.contains("INT") {
        "integer"
    } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
        "text"
    } else if t.contains("BLOB") || t.is_empty() {
        "blob"
    } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        "real"
    } else if t.contains("BOOL") {
        "boolean"
    } else if t.contains("DATE") || t.contains("TIME") {
        "date/time"
    } else {
        "numeric"
    }
}

/// The class of a PostgreSQL type (`pg_type.typname`), in the classes of [`sqlite_type_class`].
fn postgres_type_class(typname: &str) -> String {
    match typname {
        "int2" | "int4" | "int8" => "integer".into(),
        "text" | "varchar" | "bpchar" | "name" => "text".into(),
        "bytea" => "blob".into(),
        "float4" | "float8" => "real".into(),
        "numeric" => "numeric".into(),
        "bool" => "boolean".into(),
        "date" | "time" | "timetz" | "timestamp" | "timestamptz" => "date/time".into(),
        other => other.into(),
    }
}

/// The text of a `CREATE TABLE` with comments and string literals blanked out, upper-cased.
fn sql_code(sql: &str) -> String {
    let mut code = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '-' if chars.peek() == Some(&'-') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                code.push(' ');
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                for c in chars.by_ref() {
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
                code.push(' ');
            }
            '\'' | '"' => {
                // A doubled quote inside a literal ends it and starts another: same result.
                for inner in chars.by_ref() {
                    if inner == c {
                        break;
                    }
                }
                code.push_str(" '' ");
            }
            c => code.push(c.to_ascii_uppercase()),
        }
    }
    code
}

/// How many CHECK constraints a `CREATE TABLE` statement declares.
fn check_count(create_table: &str) -> usize {
    let code = sql_code(create_table);
    let bytes = code.as_bytes();
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    code.match_indices("CHECK")
        .filter(|(at, _)| {
            let before = at.checked_sub(1).map(|i| bytes[i]);
            let after = bytes.get(at + 5).copied();
            !before.is_some_and(is_word) && !after.is_some_and(is_word)
        })
        .count()
}

/// A referential action in the words of SQLite's `pragma_foreign_key_list`.
fn postgres_action(code: &str) -> &'static str {
    match code {
        "a" => "NO ACTION",
        "r" => "RESTRICT",
        "c" => "CASCADE",
        "n" => "SET NULL",
        "d" => "SET DEFAULT",
        _ => "unknown",
    }
}

async fn sqlite_schema(pool: &AnyPool) -> Schema {
    let mut schema = Schema::new();
    let objects: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT name, type, sql FROM sqlite_master \
         WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(pool)
    .await
    .expect("SQLite's tables");
    for (table, kind, sql) in objects {
        if IGNORED_TABLES.contains(&table.as_str()) || table.starts_with(SQLITE_NAME_INDEX) {
            continue;
        }
        add(&mut schema, &table, kind.clone());
        if kind == "view" {
            continue;
        }
        let sql = sql.unwrap_or_default();

        // Columns; `hidden` 1 is a virtual table's hidden column, 2 and 3 are generated ones.
        let columns: Vec<(String, String, i64, i64, i64)> = sqlx::query_as(
            "SELECT name, type, \"notnull\", pk, hidden FROM pragma_table_xinfo($1) ORDER BY cid",
        )
        .bind(&table)
        .fetch_all(pool)
        .await
        .expect("SQLite's columns");
        let mut primary_key: Vec<(i64, String)> = columns
            .iter()
            .filter(|column| column.3 > 0)
            .map(|column| (column.3, column.0.clone()))
            .collect();
        primary_key.sort();
        // A single INTEGER PRIMARY KEY is the rowid: never NULL, declared so or not. Any other
        // primary key column of a rowid table takes NULL unless declared NOT NULL.
        let rowid_alias = match columns.iter().filter(|column| column.3 > 0).count() {
            1 => columns
                .iter()
                .find(|column| column.3 > 0)
                .filter(|column| column.1.eq_ignore_ascii_case("INTEGER"))
                .map(|column| column.0.clone()),
            _ => None,
        };
        let without_rowid = sql_code(&sql).contains("WITHOUT ROWID");
        for (name, declared, notnull, pk, hidden) in &columns {
            if *hidden == 1 {
                continue;
            }
            let never_null = *notnull != 0
                || rowid_alias.as_deref() == Some(name.as_str())
                || (without_rowid && *pk > 0);
            let generated = if *hidden >= 2 { " generated" } else { "" };
            add(
                &mut schema,
                &table,
                format!(
                    "column {name} {} {}{generated}",
                    not_null(never_null),
                    sqlite_type_class(declared)
                ),
            );
        }
        if !primary_key.is_empty() {
            let names: Vec<&str> = primary_key.iter().map(|(_, n)| n.as_str()).collect();
            add(
                &mut schema,
                &table,
                format!("primary key ({})", names.join(", ")),
            );
        }

        let indexes: Vec<(String, i64, String, i64)> = sqlx::query_as(
            "SELECT name, \"unique\", origin, partial FROM pragma_index_list($1) ORDER BY name",
        )
        .bind(&table)
        .fetch_all(pool)
        .await
        .expect("SQLite's indexes");
        for (index, unique, origin, partial) in indexes {
            let keys: Vec<(i64, Option<String>, i64)> = sqlx::query_as(
                "SELECT seqno, name, \"desc\" FROM pragma_index_xinfo($1) WHERE key = 1 \
                 ORDER BY seqno",
            )
            .bind(&index)
            .fetch_all(pool)
            .await
            .expect("SQLite's index columns");
            let columns: Vec<String> = keys
                .into_iter()
                .map(|(_, name, desc)| {
                    let name = name.unwrap_or_else(|| "<expression>".into());
                    if desc != 0 {
                        format!("{name} DESC")
                    } else {
                        name
                    }
                })
                .collect();
            let columns = columns.join(", ");
            match origin.as_str() {
                // The primary key's own index (a table whose key is not the rowid): the
                // primary key is compared above.
                "pk" => {}
                // UNIQUE in CREATE TABLE: SQLite names it sqlite_autoindex_<table>_<n>.
                "u" => add(
                    &mut schema,
                    &table,
                    format!("unique constraint ({columns})"),
                ),
                _ => add(
                    &mut schema,
                    &table,
                    format!(
                        "index {index} ({columns}){}{}",
                        if unique != 0 { " UNIQUE" } else { "" },
                        if partial != 0 { " partial" } else { "" }
                    ),
                ),
            }
        }

        let foreign_keys: Vec<SqliteForeignKey> = sqlx::query_as(
            "SELECT id, seq, \"table\", \"from\", \"to\", on_update, on_delete \
                 FROM pragma_foreign_key_list($1) ORDER BY id, seq",
        )
        .bind(&table)
        .fetch_all(pool)
        .await
        .expect("SQLite's foreign keys");
        let mut by_id: BTreeMap<i64, Vec<_>> = BTreeMap::new();
        for key in foreign_keys {
            by_id.entry(key.0).or_default().push(key);
        }
        for parts in by_id.values() {
            let parent = &parts[0].2;
            let from: Vec<&str> = parts.iter().map(|p| p.3.as_str()).collect();
            let to: Vec<String> = if parts.iter().all(|p| p.4.is_some()) {
                parts
                    .iter()
                    .map(|p| p.4.clone().unwrap_or_default())
                    .collect()
            } else {
                // `REFERENCES parent` without columns: the parent's primary key.
                let mut key: Vec<(i64, String)> =
                    sqlx::query_as("SELECT pk, name FROM pragma_table_info($1) WHERE pk > 0")
                        .bind(parent)
                        .fetch_all(pool)
                        .await
                        .expect("the referenced primary key");
                key.sort();
                key.into_iter().map(|(_, name)| name).collect()
            };
            add(
                &mut schema,
                &table,
                format!(
                    "foreign key ({}) -> {parent} ({}) ON DELETE {} ON UPDATE {}",
                    from.join(", "),
                    to.join(", "),
                    parts[0].6,
                    parts[0].5
                ),
            );
        }

        let checks = check_count(&sql);
        if checks > 0 {
            add(&mut schema, &table, format!("CHECK constraints: {checks}"));
        }
    }

    let triggers: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name",
    )
    .fetch_all(pool)
    .await
    .expect("SQLite's triggers");
    for (name, table, sql) in triggers {
        if name.starts_with(SQLITE_NAME_INDEX) {
            continue;
        }
        let code = sql_code(&sql);
        let words: Vec<&str> = code.split_whitespace().collect();
        let timing = if code.contains(" INSTEAD OF ") {
            "INSTEAD OF"
        } else if words.contains(&"AFTER") {
            "AFTER"
        } else {
            // SQLite's default.
            "BEFORE"
        };
        let event = ["INSERT", "UPDATE", "DELETE"]
            .into_iter()
            .find(|event| words.contains(event))
            .unwrap_or_else(|| panic!("trigger {name} names no event: {sql}"));
        add(&mut schema, &table, format!("trigger {timing} {event}"));
    }
    schema
}

async fn postgres_schema(pool: &AnyPool) -> Schema {
    let mut schema = Schema::new();
    let objects: Vec<(String, String)> = sqlx::query_as(
        "SELECT CAST(c.relname AS TEXT), \
                CASE WHEN c.relkind IN ('r', 'p') THEN 'table' ELSE 'view' END \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm') ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .expect("PostgreSQL's tables");
    let ignored = |table: &str| IGNORED_TABLES.contains(&table);
    for (table, kind) in &objects {
        if !ignored(table) {
            add(&mut schema, table, kind.clone());
        }
    }
    let tables: BTreeSet<&str> = objects
        .iter()
        .filter(|(table, kind)| kind == "table" && !ignored(table))
        .map(|(table, _)| table.as_str())
        .collect();
    let add_to_table = |schema: &mut Schema, table: &str, fact: String| {
        if tables.contains(table) {
            add(schema, table, fact);
        }
    };

    let columns: Vec<(String, String, i64, String, i64)> = sqlx::query_as(
        "SELECT CAST(c.relname AS TEXT), CAST(a.attname AS TEXT), \
                CAST(CASE WHEN a.attnotnull THEN 1 ELSE 0 END AS BIGINT), \
                CAST(t.typname AS TEXT), \
                CAST(CASE WHEN a.attgenerated <> '' THEN 1 ELSE 0 END AS BIGINT) \
         FROM pg_attribute a \
         JOIN pg_class c ON c.oid = a.attrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_type t ON t.oid = a.atttypid \
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') \
           AND a.attnum > 0 AND NOT a.attisdropped",
    )
    .fetch_all(pool)
    .await
    .expect("PostgreSQL's columns");
    for (table, name, notnull, typname, generated) in columns {
        add_to_table(
            &mut schema,
            &table,
            format!(
                "column {name} {} {}{}",
                not_null(notnull != 0),
                postgres_type_class(&typname),
                if generated != 0 { " generated" } else { "" }
            ),
        );
    }

    // Constraints other than foreign keys: primary keys, unique constraints, checks.
    let constraints: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT CAST(c.relname AS TEXT), CAST(con.contype AS TEXT), \
                array_to_string(ARRAY( \
                    SELECT CAST(a.attname AS TEXT) \
                    FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord) \
                    JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum \
                    ORDER BY k.ord), ', ') \
         FROM pg_constraint con \
         JOIN pg_class c ON c.oid = con.conrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND con.contype IN ('p', 'u', 'c')",
    )
    .fetch_all(pool)
    .await
    .expect("PostgreSQL's constraints");
    let mut checks: BTreeMap<String, usize> = BTreeMap::new();
    for (table, kind, columns) in constraints {
        match kind.as_str() {
            "p" => add_to_table(&mut schema, &table, format!("primary key ({columns})")),
            "u" => add_to_table(
                &mut schema,
                &table,
                format!("unique constraint ({columns})"),
            ),
            _ => *checks.entry(table).or_default() += 1,
        }
    }
    for (table, count) in checks {
        add_to_table(&mut schema, &table, format!("CHECK constraints: {count}"));
    }

    // Indexes that do not back a primary key or unique constraint (those are compared above).
    let indexes: Vec<(String, String, i64, i64, String)> = sqlx::query_as(
        "SELECT CAST(t.relname AS TEXT), CAST(i.relname AS TEXT), \
                CAST(CASE WHEN x.indisunique THEN 1 ELSE 0 END AS BIGINT), \
                CAST(CASE WHEN x.indpred IS NOT NULL THEN 1 ELSE 0 END AS BIGINT), \
                array_to_string(ARRAY( \
                    SELECT COALESCE(CAST(a.attname AS TEXT), '<expression>') \
                           || CASE WHEN (x.indoption[k.ord - 1] & 1) = 1 THEN ' DESC' ELSE '' END \
                    FROM unnest(CAST(x.indkey AS int2[])) WITH ORDINALITY AS k(attnum, ord) \
                    LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum \
                    WHERE k.ord <= x.indnkeyatts \
                    ORDER BY k.ord), ', ') \
         FROM pg_index x \
         JOIN pg_class i ON i.oid = x.indexrelid \
         JOIN pg_class t ON t.oid = x.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = 'public' \
           AND NOT EXISTS (SELECT 1 FROM pg_constraint con \
                           WHERE con.conindid = x.indexrelid AND con.conrelid = t.oid \
                             AND con.contype IN ('p', 'u', 'x'))",
    )
    .fetch_all(pool)
    .await
    .expect("PostgreSQL's indexes");
    for (table, index, unique, partial, columns) in indexes {
        if index == POSTGRES_NAME_INDEX {
            continue;
        }
        add_to_table(
            &mut schema,
            &table,
            format!(
                "index {index} ({columns}){}{}",
                if unique != 0 { " UNIQUE" } else { "" },
                if partial != 0 { " partial" } else { "" }
            ),
        );
    }

    let foreign_keys: Vec<(String, String, String, String, String, String)> = sqlx::query_as(
        "SELECT CAST(c.relname AS TEXT), \
                array_to_string(ARRAY( \
                    SELECT CAST(a.attname AS TEXT) \
                    FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord) \
                    JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum \
                    ORDER BY k.ord), ', '), \
                CAST(r.relname AS TEXT), \
                array_to_string(ARRAY( \
                    SELECT CAST(a.attname AS TEXT) \
                    FROM unnest(con.confkey) WITH ORDINALITY AS k(attnum, ord) \
                    JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum \
                    ORDER BY k.ord), ', '), \
                CAST(con.confdeltype AS TEXT), CAST(con.confupdtype AS TEXT) \
         FROM pg_constraint con \
         JOIN pg_class c ON c.oid = con.conrelid \
         JOIN pg_class r ON r.oid = con.confrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND con.contype = 'f'",
    )
    .fetch_all(pool)
    .await
    .expect("PostgreSQL's foreign keys");
    for (table, from, parent, to, on_delete, on_update) in foreign_keys {
        add_to_table(
            &mut schema,
            &table,
            format!(
                "foreign key ({from}) -> {parent} ({to}) ON DELETE {} ON UPDATE {}",
                postgres_action(&on_delete),
                postgres_action(&on_update)
            ),
        );
    }

    let triggers: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT CAST(event_object_table AS TEXT), CAST(action_timing AS TEXT), \
                CAST(event_manipulation AS TEXT) \
         FROM information_schema.triggers WHERE trigger_schema = 'public'",
    )
    .fetch_all(pool)
    .await
    .expect("PostgreSQL's triggers");
    for (table, timing, event) in triggers {
        add(&mut schema, &table, format!("trigger {timing} {event}"));
    }
    schema
}

#[test]
fn checks_are_counted_outside_comments_and_literals() {
    let sql = "CREATE TABLE t (\n  -- check the status\n  a TEXT CHECK (a IN ('check', 'b')),\n  \
               b INTEGER NOT NULL CHECK(b > 0), rechecked INTEGER, /* CHECK */\n  \
               CONSTRAINT named CHECK (a <> \"check\"))";
    assert_eq!(check_count(sql), 3);
}

#[test]
fn type_classes_agree_across_backends() {
    for (sqlite, postgres) in [
        ("INTEGER", "int8"),
        ("BIGINT", "int8"),
        ("TEXT", "text"),
        ("BLOB", "bytea"),
        ("REAL", "float8"),
    ] {
        assert_eq!(sqlite_type_class(sqlite), postgres_type_class(postgres));
    }
}
