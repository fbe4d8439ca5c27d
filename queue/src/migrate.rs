//! Versioned migrations from `migrations/<backend>/NNNN_name.sql`, embedded in the binary.
//! Each backend applies the ones its `drover_migrations` table lacks, in order, holding a
//! lock so that many processes starting at once apply each once.
//!
//! A migration runs in a transaction of its own, unless its first line is
//! [`NO_TRANSACTION`]: then (PostgreSQL) its statements run one by one outside any
//! transaction, as `CREATE INDEX CONCURRENTLY` must, so an index on a big table is built
//! without blocking writes. Such a migration must be safe to run again after a crash part
//! way through (`DROP INDEX CONCURRENTLY IF EXISTS` first: a failed build leaves an invalid
//! index behind).

/// The first line that makes a migration run outside a transaction.
pub const NO_TRANSACTION: &str = "-- drover:no-transaction";

/// What a `migrate` did: the migrations this call applied (none when the store was up to
/// date), and the store's schema version after it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// `(version, name)`, oldest first.
    pub applied: Vec<(i64, &'static str)>,
    /// The newest applied version now.
    pub version: i64,
}

/// Where a store's schema is against what this build needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaStatus {
    /// The newest applied version (0: none).
    pub version: i64,
    /// The newest version this build has.
    pub latest: i64,
}

impl SchemaStatus {
    pub fn is_current(&self) -> bool {
        self.version >= self.latest
    }
}

/// One migration file.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

impl Migration {
    /// False when the migration's first line is [`NO_TRANSACTION`].
    pub fn in_transaction(&self) -> bool {
        !self.sql.trim_start().starts_with(NO_TRANSACTION)
    }

    /// The migration's statements, for running one by one: split at a `;` that ends a
    /// line, comment-only pieces left out. (No-transaction migrations hold plain DDL, no
    /// function bodies.)
    pub fn statements(&self) -> Vec<&'static str> {
        self.sql
            .split(";\n")
            .map(|s| s.trim().trim_end_matches(';').trim())
            .filter(|s| {
                s.lines()
                    .any(|l| !l.trim().is_empty() && !l.trim().starts_with("--"))
            })
            .collect()
    }
}

/// The newest version of a set.
pub fn latest(set: &[Migration]) -> i64 {
    set.last().map_or(0, |m| m.version)
}

/// SQLite migrations, oldest first.
pub const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("../../migrations/sqlite/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "effects_artifacts",
        sql: include_str!("../../migrations/sqlite/0002_effects_artifacts.sql"),
    },
    Migration {
        version: 3,
        name: "event_notify",
        sql: include_str!("../../migrations/sqlite/0003_event_notify.sql"),
    },
    Migration {
        version: 4,
        name: "retention_index",
        sql: include_str!("../../migrations/sqlite/0004_retention_index.sql"),
    },
    Migration {
        version: 5,
        name: "claim_by_queue_index",
        sql: include_str!("../../migrations/sqlite/0005_claim_by_queue_index.sql"),
    },
    Migration {
        version: 6,
        name: "gates",
        sql: include_str!("../../migrations/sqlite/0006_gates.sql"),
    },
    Migration {
        version: 7,
        name: "schedules",
        sql: include_str!("../../migrations/sqlite/0007_schedules.sql"),
    },
    Migration {
        version: 8,
        name: "item_outputs",
        sql: include_str!("../../migrations/sqlite/0008_item_outputs.sql"),
    },
    Migration {
        version: 9,
        name: "rate_limits_suppressions",
        sql: include_str!("../../migrations/sqlite/0009_rate_limits_suppressions.sql"),
    },
    Migration {
        version: 10,
        name: "profiles_applications",
        sql: include_str!("../../migrations/sqlite/0010_profiles_applications.sql"),
    },
];

/// PostgreSQL migrations, oldest first.
pub const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("../../migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "effects_artifacts",
        sql: include_str!("../../migrations/postgres/0002_effects_artifacts.sql"),
    },
    Migration {
        version: 3,
        name: "event_notify",
        sql: include_str!("../../migrations/postgres/0003_event_notify.sql"),
    },
    Migration {
        version: 4,
        name: "retention_index",
        sql: include_str!("../../migrations/postgres/0004_retention_index.sql"),
    },
    Migration {
        version: 5,
        name: "batched_event_notify",
        sql: include_str!("../../migrations/postgres/0005_batched_event_notify.sql"),
    },
    Migration {
        version: 6,
        name: "claim_by_queue_index",
        sql: include_str!("../../migrations/postgres/0006_claim_by_queue_index.sql"),
    },
    Migration {
        version: 7,
        name: "fewer_index_entries",
        sql: include_str!("../../migrations/postgres/0007_fewer_index_entries.sql"),
    },
    Migration {
        version: 8,
        name: "gates",
        sql: include_str!("../../migrations/postgres/0008_gates.sql"),
    },
    Migration {
        version: 9,
        name: "schedules",
        sql: include_str!("../../migrations/postgres/0009_schedules.sql"),
    },
    Migration {
        version: 10,
        name: "item_outputs",
        sql: include_str!("../../migrations/postgres/0010_item_outputs.sql"),
    },
    Migration {
        version: 11,
        name: "rate_limits_suppressions",
        sql: include_str!("../../migrations/postgres/0011_rate_limits_suppressions.sql"),
    },
    Migration {
        version: 12,
        name: "profiles_applications",
        sql: include_str!("../../migrations/postgres/0012_profiles_applications.sql"),
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_transaction_migrations_split_into_statements() {
        let m = Migration {
            version: 9,
            name: "x",
            sql: "-- drover:no-transaction\n-- why\nDROP INDEX CONCURRENTLY IF EXISTS a;\n\
                  CREATE INDEX CONCURRENTLY a\n    ON jobs (b);\n",
        };
        assert!(!m.in_transaction());
        assert_eq!(
            m.statements(),
            [
                "-- drover:no-transaction\n-- why\nDROP INDEX CONCURRENTLY IF EXISTS a",
                "CREATE INDEX CONCURRENTLY a\n    ON jobs (b)"
            ]
        );
        assert!(POSTGRES[0].in_transaction());
    }

    #[test]
    fn versions_increase_without_gaps() {
        for set in [SQLITE, POSTGRES] {
            for (i, m) in set.iter().enumerate() {
                assert_eq!(m.version, i as i64 + 1);
                assert!(!m.sql.trim().is_empty());
            }
        }
    }
}
