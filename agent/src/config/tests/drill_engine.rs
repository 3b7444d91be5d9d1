//! `[[drill]]` with `method = "mariadb-backup"` or `"redis-rdb"`: what
//! each takes, the keys only one method has, and the commands a Redis
//! drill's checks may run.

use super::*;

#[test]
fn mariadb_and_redis_drills_take_their_backup_and_find_programs_in_path() {
    let text = "[[drill]]\nname = \"m\"\nmethod = \"mariadb-backup\"\nbackup = \"/srv/mariadb\"\n\
                checks = [{ query = \"SELECT count(*) FROM t\", min = 1 }]\n\
                [[drill]]\nname = \"r\"\nmethod = \"redis-rdb\"\nbackup = \"/srv/redis\"\n\
                aof = \"/srv/redis/appendonlydir\"\nkeys = [\"k\"]\n\
                checks = [{ query = \"LLEN queue\", min = 3 }]\n";
    let config = parse_str("w.toml", text, Path::new("/")).expect("two drills");
    let (m, r) = (&config.drills[0], &config.drills[1]);
    assert!(
        matches!(&m.method, DrillMethod::MariadbBackup { backup } if backup == Path::new("/srv/mariadb"))
    );
    assert_eq!(m.method.engine(), "mysql");
    assert_eq!(m.queries[0].database, "");
    assert_eq!(m.bin_dir, Path::new(""));
    assert_eq!(m.owner_of, Path::new("/srv/mariadb"));
    assert!(
        matches!(&r.method, DrillMethod::RedisRdb { aof: Some(a), .. } if a == Path::new("/srv/redis/appendonlydir"))
    );
    assert_eq!(
        (r.keys.clone(), r.queries[0].database.as_str()),
        (vec!["k".to_string()], "0")
    );
}

#[test]
fn an_unknown_method_is_named_with_the_ones_there_are() {
    one(
        "[[drill]]\nname = \"m\"\nmethod = \"mysqldump\"\nbackup = \"/b\"\n",
        3,
        10,
        &[
            "`method` \"mysqldump\"",
            "\"mariadb-backup\" or \"redis-rdb\"",
        ],
    );
}

#[test]
fn keys_of_another_method_are_refused() {
    let found = errors(
        "[[drill]]\nname = \"m\"\nmethod = \"mariadb-backup\"\nbackup = \"/b\"\narchive = \"/wal\"\nkeys = [\"k\"]\n",
    );
    let text: Vec<String> = found.iter().map(|d| d.message.clone()).collect();
    assert!(
        text.iter()
            .any(|m| m.contains("`archive` (a WAL archive) is for PostgreSQL drills only")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|m| m.contains("`aof` and `keys` are for method = \"redis-rdb\" only")),
        "{text:?}"
    );
    let found = errors("[[drill]]\nname = \"m\"\nmethod = \"redis-rdb\"\npgbackrest = \"main\"\n");
    assert!(
        found.iter().any(|d| d.message.contains("needs `backup`")),
        "{found:#?}"
    );
}

#[test]
fn a_redis_check_must_be_an_integer_read() {
    let found = errors(
        "[[drill]]\nname = \"r\"\nmethod = \"redis-rdb\"\nbackup = \"/b\"\n\
         checks = [{ query = \"FLUSHALL\", min = 0 }, { query = \"DBSIZE\", database = \"app\", min = 1 }]\n",
    );
    let text: Vec<String> = found.iter().map(|d| d.message.clone()).collect();
    assert!(
        text.iter()
            .any(|m| m
                .contains("\"FLUSHALL\" is not a command a Redis drill runs; use one of DBSIZE")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|m| m.contains("a Redis database number here")),
        "{text:?}"
    );
}
