//! `pg-integrity` on a real server: real corruption on disk shows as
//! checksum failures (critical); amcheck finds an index whose order no
//! longer matches its operator class; constraint audits find planted
//! duplicates, NULLs, out-of-range values and orphans.

use watchpost_e2e::pg::PgPair;
use watchpost_e2e::probes;
use watchpost_e2e::report::{Checked, check, sets};

fn integrity(pair: &PgPair, settings: &[(&str, &str)]) -> Checked {
    let mut args = pair.target_args();
    args.extend(sets(settings));
    check(&probes::path("pg-integrity"), &args)
}

#[test]
fn corruption_on_disk_is_reported_as_checksum_failures() {
    let mut pair = PgPair::start();
    pair.primary.execute(
        "CREATE TABLE victim (id int PRIMARY KEY, payload text);
         INSERT INTO victim SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 200) g;",
    );
    let healthy = integrity(&pair, &[]);
    assert_eq!(
        (healthy.code, healthy.status()),
        (0, "ok"),
        "{:#}",
        healthy.json
    );
    assert_eq!(healthy.value("postgresql.integrity.data_checksums"), 1.0);
    assert_eq!(healthy.value("postgresql.integrity.checksum_failures"), 0.0);

    pair.primary.corrupt_first_page("victim");
    let read = pair
        .primary
        .connect()
        .simple_query("SELECT sum(length(payload)) FROM victim");
    let error = read.expect_err("reading a corrupt page must fail");
    let message = error.as_db_error().map(|e| e.message().to_string());
    assert!(
        message
            .as_deref()
            .is_some_and(|m| m.contains("invalid page in block 0")),
        "{error:?}"
    );

    let corrupt = integrity(&pair, &[]);
    assert_eq!(
        (corrupt.code, corrupt.status()),
        (2, "critical"),
        "{:#}",
        corrupt.json
    );
    assert!(corrupt.value("postgresql.integrity.checksum_failures") >= 1.0);
    assert!(
        corrupt
            .message()
            .contains("failed checksum verification (postgres: "),
        "{}",
        corrupt.message()
    );
}

#[test]
fn amcheck_finds_an_index_out_of_order() {
    let pair = PgPair::start();
    let settings = [("check_indexes", "tricky")];
    let missing = integrity(&pair, &settings);
    assert_eq!(missing.status(), "unknown", "{:#}", missing.json);
    assert!(
        missing.message().contains("CREATE EXTENSION amcheck"),
        "{}",
        missing.message()
    );

    // An index built with a comparison function that is then reversed: its
    // pages are now out of order for its own operator class, as after a
    // collation change.
    pair.primary.execute(
        "CREATE EXTENSION amcheck;
         GRANT EXECUTE ON FUNCTION bt_index_check(regclass) TO watchpost;
         CREATE FUNCTION tricky_cmp(int, int) RETURNS int LANGUAGE sql IMMUTABLE
           AS 'SELECT CASE WHEN $1 < $2 THEN -1 WHEN $1 > $2 THEN 1 ELSE 0 END';
         CREATE OPERATOR CLASS int4_tricky FOR TYPE int4 USING btree AS
           OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >,
           FUNCTION 1 tricky_cmp(int, int);
         CREATE TABLE tricky (id int PRIMARY KEY, v int);
         INSERT INTO tricky SELECT g, g FROM generate_series(1, 2000) g;
         CREATE INDEX tricky_v ON tricky (v int4_tricky);",
    );
    let healthy = integrity(&pair, &settings);
    assert_eq!(healthy.status(), "ok", "{:#}", healthy.json);
    assert_eq!(healthy.value("postgresql.integrity.indexes_checked"), 2.0);
    assert_eq!(healthy.value("postgresql.integrity.index_corruptions"), 0.0);

    pair.primary.execute(
        "CREATE OR REPLACE FUNCTION tricky_cmp(int, int) RETURNS int LANGUAGE sql IMMUTABLE
           AS 'SELECT CASE WHEN $1 < $2 THEN 1 WHEN $1 > $2 THEN -1 ELSE 0 END'",
    );
    let corrupt = integrity(&pair, &settings);
    assert_eq!(
        (corrupt.code, corrupt.status()),
        (2, "critical"),
        "{:#}",
        corrupt.json
    );
    assert_eq!(corrupt.value("postgresql.integrity.index_corruptions"), 1.0);
    assert!(
        corrupt
            .message()
            .contains("public.tricky_v: item order invariant violated"),
        "{}",
        corrupt.message()
    );
}

#[test]
fn constraint_audits_find_planted_duplicates_nulls_and_orphans() {
    let pair = PgPair::start();
    pair.primary.execute(
        "GRANT pg_read_all_data TO watchpost;
         CREATE SCHEMA sales;
         CREATE TABLE sales.orders (id int PRIMARY KEY, customer_id int, number int, total numeric(12, 2));
         INSERT INTO sales.orders SELECT g, g % 50, 1000 + g, g * 10 FROM generate_series(1, 500) g;
         CREATE TABLE sales.\"Order Lines\" (id int PRIMARY KEY, order_id int, sku text);
         INSERT INTO sales.\"Order Lines\" SELECT g, 1 + g % 500, 'sku' FROM generate_series(1, 1000) g;
         -- planted: a duplicate order number, two NULL totals, one negative
         -- total, two lines of an order that does not exist
         INSERT INTO sales.orders VALUES (501, 7, 1007, 1), (502, 3, 2000, NULL), (503, 3, 2001, NULL),
                                         (504, 3, 2002, -5);
         UPDATE sales.orders SET customer_id = 7 WHERE id = 7;
         INSERT INTO sales.\"Order Lines\" VALUES (1001, 999, 'x'), (1002, 999, 'y');",
    );
    let rules = [
        ("unique.order_numbers", "sales.orders(customer_id, number)"),
        ("unique.line_ids", "sales.\"Order Lines\"(id)"),
        ("not_null.totals", "sales.orders(total)"),
        ("range.totals", "sales.orders(total) 0..1000000"),
        (
            "orphans.lines",
            "sales.\"Order Lines\"(order_id) -> sales.orders(id)",
        ),
    ];
    let report = integrity(&pair, &rules);
    assert_eq!(
        (report.code, report.status()),
        (2, "critical"),
        "{:#}",
        report.json
    );
    let violations = |rule: &str| {
        report
            .value_where("postgresql.integrity.constraint_violations", "rule", rule)
            .unwrap_or_else(|| panic!("no violations for {rule}: {:#}", report.json))
    };
    assert_eq!(violations("unique.order_numbers"), 1.0);
    assert_eq!(violations("unique.line_ids"), 0.0);
    assert_eq!(violations("not_null.totals"), 2.0);
    assert_eq!(violations("range.totals"), 1.0);
    assert_eq!(violations("orphans.lines"), 2.0);
    let message = report.message();
    for expected in [
        "unique.order_numbers: 1 violations, e.g. (7, 1007)",
        "not_null.totals: 2 violations",
        "range.totals: 1 violations, e.g. (-5.00)",
        "orphans.lines: 2 violations, e.g. (999)",
    ] {
        assert!(message.contains(expected), "{expected:?} not in {message}");
    }

    // Limits that allow a few violations turn them into notes.
    let mut lenient: Vec<(&str, &str)> = rules.to_vec();
    lenient.extend([("violations_warning", "5"), ("violations_critical", "10")]);
    assert_eq!(integrity(&pair, &lenient).status(), "ok");

    let bad = integrity(&pair, &[("range.totals", "sales.orders(total) 0..lots")]);
    assert_eq!(bad.status(), "unknown", "{:#}", bad.json);
    assert!(
        bad.message().contains("config `range.totals`"),
        "{}",
        bad.message()
    );
    let wrong_column = integrity(&pair, &[("range.x", "sales.orders(nope) 0..1")]);
    assert_eq!(wrong_column.status(), "unknown", "{:#}", wrong_column.json);
    assert!(
        wrong_column.message().contains("has no column nope"),
        "{}",
        wrong_column.message()
    );
}
