//! The schema migrations of both stores, built into the binary from
//! `migrations/sqlite` and `migrations/postgres`, and run by sqlx's
//! [`Migrator`] when a store opens. (sqlx's `migrate!` macro would embed
//! them too, at the price of building sqlx's database drivers a second
//! time, for the compiler; this list is checked against the directories
//! by a test.) A migration's version, description and checksum (SHA-384 of
//! its SQL) are what sqlx records in `_sqlx_migrations`: they are those
//! the macro gave, so databases made before still open.

use std::borrow::Cow;

use sqlx::SqlStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// One migration: its version, its description (the file name's words),
/// its SQL.
type Step = (i64, &'static str, &'static str);

/// `migrations/sqlite`, in order.
const SQLITE: &[Step] = &[
    (1, "cluster state", include_str!("../../../../migrations/sqlite/0001_cluster_state.sql")),
    (2, "task counters", include_str!("../../../../migrations/sqlite/0002_task_counters.sql")),
    (3, "users", include_str!("../../../../migrations/sqlite/0003_users.sql")),
    (4, "worker admin", include_str!("../../../../migrations/sqlite/0004_worker_admin.sql")),
    (5, "chains", include_str!("../../../../migrations/sqlite/0005_chains.sql")),
    (6, "attempt digests", include_str!("../../../../migrations/sqlite/0006_attempt_digests.sql")),
    (7, "job events", include_str!("../../../../migrations/sqlite/0007_job_events.sql")),
];

/// `migrations/postgres`, in order.
const POSTGRES: &[Step] = &[
    (1, "cluster state", include_str!("../../../../migrations/postgres/0001_cluster_state.sql")),
    (2, "task counters", include_str!("../../../../migrations/postgres/0002_task_counters.sql")),
    (3, "users", include_str!("../../../../migrations/postgres/0003_users.sql")),
    (4, "worker admin", include_str!("../../../../migrations/postgres/0004_worker_admin.sql")),
    (5, "chains", include_str!("../../../../migrations/postgres/0005_chains.sql")),
    (6, "attempt digests", include_str!("../../../../migrations/postgres/0006_attempt_digests.sql")),
    (7, "job events", include_str!("../../../../migrations/postgres/0007_job_events.sql")),
];

/// The SQLite store's migrations.
pub(super) fn sqlite() -> Migrator {
    migrator(SQLITE)
}

/// The PostgreSQL store's migrations.
pub(super) fn postgres() -> Migrator {
    migrator(POSTGRES)
}

fn migrator(steps: &[Step]) -> Migrator {
    Migrator::with_migrations(
        steps
            .iter()
            .map(|&(version, description, sql)| {
                // As sqlx reads a migration file: one that starts so runs
                // outside a transaction.
                let no_tx = sql.starts_with("-- no-transaction");
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    SqlStr::from_static(sql),
                    no_tx,
                )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The list above, as the files in `migrations/DIR` name it.
    fn on_disk(dir: &str) -> Vec<(i64, String, String)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations").join(dir);
        let mut files: Vec<_> =
            std::fs::read_dir(&root).expect("the migrations directory").map(|e| e.expect("an entry").path()).collect();
        files.sort();
        files
            .iter()
            .map(|path| {
                let name = path.file_name().and_then(|n| n.to_str()).expect("a UTF-8 name");
                let (version, rest) = name.split_once('_').expect("VERSION_DESCRIPTION.sql");
                let description = rest.strip_suffix(".sql").expect("a .sql file").replace('_', " ");
                let sql = std::fs::read_to_string(path).expect("the migration's SQL");
                (version.parse().expect("a numeric version"), description, sql)
            })
            .collect()
    }

    fn listed(steps: &[Step]) -> Vec<(i64, String, String)> {
        steps.iter().map(|&(v, d, s)| (v, d.to_owned(), s.to_owned())).collect()
    }

    #[test]
    fn every_migration_file_is_listed_in_order() {
        assert_eq!(listed(SQLITE), on_disk("sqlite"), "migrations/sqlite and SQLITE differ");
        assert_eq!(listed(POSTGRES), on_disk("postgres"), "migrations/postgres and POSTGRES differ");
    }

    #[test]
    fn checksums_are_those_databases_made_before_recorded() {
        // SHA-384 of each file as sqlx's `migrate!` embedded it: the SQLite
        // ones as read from `_sqlx_migrations` of a state that build made,
        // the PostgreSQL ones by the same rule. A changed file would make
        // every existing database refuse to open: add a migration instead.
        type Sums = &'static [(i64, &'static str)];
        let recorded: [(&[Step], Sums); 2] = [
            (
                SQLITE,
                &[
                    (
                        1,
                        "5d01d13ac79bdfc95260c8a859abfcfb156eebba4730e238ab275f64058ea48cd44b5a728f247f568bdd9fc04154a50f",
                    ),
                    (
                        2,
                        "0d38abb87a9e6758b16d46463ed10bfc9b53a451e27aa15ca464c3640669684ac383681fcde7ec507da1d1176b4df92b",
                    ),
                    (
                        3,
                        "db70da9e4851506322632deaa9ccd7fd71458bd2b5df2a646587de78fb9059c6405a85a384630469db3522496cc285b1",
                    ),
                    (
                        4,
                        "08694b7d94ff9a4d6b68a1159d2384c179392c8f7755d5a5ef9fed4efc94666e53378e3ac9acaadee544ea9bba6a8bdf",
                    ),
                    (
                        5,
                        "46bd378e519d31bdf4ef467d88f13bc03bf8d47f2cf6f8ac397987db455d400e43483ccf4fc18ca35fa6b50ddd6259f6",
                    ),
                    (
                        6,
                        "7221e12b9523ea5943258ce3831bb328f156ee62a96f2db640cc4230568b7c6413dc24fd83d72e0c9f4f345079e62d6f",
                    ),
                    (
                        7,
                        "0c3cfb72d17c76b6edb355994525779a793083fb650f15ca3146275ae8f86b0988cc141f3fd653736d67238c1ec6c5c8",
                    ),
                ],
            ),
            (
                POSTGRES,
                &[
                    (
                        1,
                        "54803b74f29349afa0ec50b0445d6d38adcc87e2310905ea9303ce5313749a2c56e1891cf942e08183040adb9d45ccd1",
                    ),
                    (
                        2,
                        "d7fbb5171e3dc5484d3fdedc6d363af66d23a03181d19aec83f300a2c936dd1fee7cc6fd3446e669cb243d34de4d1a66",
                    ),
                    (
                        3,
                        "db70da9e4851506322632deaa9ccd7fd71458bd2b5df2a646587de78fb9059c6405a85a384630469db3522496cc285b1",
                    ),
                    (
                        4,
                        "08694b7d94ff9a4d6b68a1159d2384c179392c8f7755d5a5ef9fed4efc94666e53378e3ac9acaadee544ea9bba6a8bdf",
                    ),
                    (
                        5,
                        "46bd378e519d31bdf4ef467d88f13bc03bf8d47f2cf6f8ac397987db455d400e43483ccf4fc18ca35fa6b50ddd6259f6",
                    ),
                    (
                        6,
                        "7221e12b9523ea5943258ce3831bb328f156ee62a96f2db640cc4230568b7c6413dc24fd83d72e0c9f4f345079e62d6f",
                    ),
                    (
                        7,
                        "fb785983e7d8e266144e8084b684299f93d086b7d81a44732d981eb5e28ff60479eaaacf3878b89fdf059510ba8a6046",
                    ),
                ],
            ),
        ];
        for (steps, sums) in recorded {
            let migrator = migrator(steps);
            let got: Vec<(i64, String)> =
                migrator.iter().map(|m| (m.version, m.checksum.iter().map(|b| format!("{b:02x}")).collect())).collect();
            let want: Vec<(i64, String)> = sums.iter().map(|&(v, h)| (v, h.to_owned())).collect();
            assert_eq!(got, want);
        }
    }
}
