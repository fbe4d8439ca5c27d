//! Versioned migrations from `migrations/<backend>/NNNN_name.sql`, embedded in the binary.
//! Each backend applies the ones its `drover_migrations` table lacks, in order, each in its
//! own transaction, holding a lock so that many processes starting at once apply each once.

/// One migration file.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
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
    // 6 is reserved for the gates work.
    Migration {
        version: 7,
        name: "schedules",
        sql: include_str!("../../migrations/sqlite/0007_schedules.sql"),
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
    // 8 is reserved for the gates work.
    Migration {
        version: 9,
        name: "schedules",
        sql: include_str!("../../migrations/postgres/0009_schedules.sql"),
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_increase() {
        for set in [SQLITE, POSTGRES] {
            for pair in set.windows(2) {
                assert!(pair[0].version < pair[1].version);
            }
            for m in set {
                assert!(!m.sql.trim().is_empty());
            }
        }
    }
}
