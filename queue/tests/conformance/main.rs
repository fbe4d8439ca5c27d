//! One conformance suite for the `Store` trait, run against every backend (SQLite,
//! PostgreSQL, Redis). Each test opens
//! its own SQLite file or PostgreSQL schema, so the suite runs in parallel.

mod suite;

macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let backend = drover_queue::testing::Backend::sqlite();
                    crate::suite::$test(&backend).await;
                    backend.cleanup().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let backend = drover_queue::testing::Backend::postgres();
                    crate::suite::$test(&backend).await;
                    backend.cleanup().await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let backend = drover_queue::testing::Backend::redis();
                    crate::suite::$test(&backend).await;
                    backend.cleanup().await;
                }
            )*
        }
    };
}

conformance!(
    migrations_are_idempotent_and_concurrent,
    server_health_reads_what_the_backend_has,
    enqueue_stores_every_field,
    invalid_jobs_are_refused_naming_the_field,
    operator_transitions_follow_the_status_machine,
    claim_order_is_priority_then_run_at_then_id,
    claim_takes_at_most_the_free_slots,
    no_job_is_claimed_twice_by_concurrent_claimers,
    stale_epochs_are_fenced,
    batch_completion_fences_each_job,
    batches_larger_than_one_statement_keep_every_job,
    expired_leases_are_requeued_or_settled,
    racing_transitions_each_land_once,
    transient_failures_retry_after_backoff,
    idempotency_keys_dedupe_or_conflict,
    full_queues_refuse_enqueues,
    paused_queues_are_not_leased,
    checkpoints_keep_the_newest,
    item_outputs_are_fenced_paged_and_rewritten,
    item_outputs_are_deleted_with_the_job,
    event_log_is_sequenced_without_gaps,
    list_filters_and_pages_newest_first,
    one_leader_at_a_time,
    workers_report_their_heartbeat,
    notifier_wakes_on_enqueue_and_control,
    effects_are_recorded_once_and_fenced,
    artifacts_are_stored_listed_and_fenced,
    artifact_names_are_checked_by_the_store,
    nul_characters_are_refused_alike,
    finished_jobs_are_pruned_after_their_retention,
    gates_park_a_job_until_every_one_is_decided,
    a_decision_made_while_the_job_parks_is_kept,
    gates_past_their_deadline_take_their_default,
    waiting_jobs_can_be_paused_resumed_and_cancelled,
    only_the_lease_holder_opens_gates_or_parks,
    the_inbox_pages_across_jobs_oldest_first,
    racing_decisions_land_once,
    snoozed_jobs_wait_without_using_an_attempt,
    schedules_are_created_replaced_and_deleted,
    each_tick_enqueues_one_job_across_racing_evaluators,
    missed_ticks_catch_up_inside_the_window_only,
    overlap_policies_hold_back_skip_or_cancel,
    a_changed_template_does_not_conflict_with_a_fired_tick,
    config_schedules_are_declared_once_and_owned,
    schedules_are_replaced_in_batches_by_compare_and_set,
    many_due_schedules_fire_once_each_in_chunks,
    rate_limits_are_written_by_compare_and_set,
    concurrent_takers_share_one_budget_per_window,
    a_spent_budget_waits_until_the_reset,
    observations_fold_in_any_order,
    rate_limits_of_resources_are_independent,
    suppressions_are_kept_once_and_paged_by_address,
    batched_lookups_take_any_number_of_addresses,
    contacts_keep_the_latest,
    suppressions_take_normalised_addresses,
    profiles_resumes_and_sessions_are_stored_replaced_and_deleted,
    a_posting_is_claimed_once_and_settled_along_its_life,
    caps_close_the_ist_day_and_month,
    concurrent_claims_never_exceed_the_caps,
    the_ledger_pages_by_posting_key,
    stored_sessions_hold_no_plaintext_cookie,
);

/// PostgreSQL only: a migration marked `-- drover:no-transaction` runs outside a
/// transaction (as `CREATE INDEX CONCURRENTLY` must), once, with four migrators at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_no_transaction_migrations_build_indexes_concurrently() {
    use drover_queue::migrate::{Migration, POSTGRES};
    let backend = drover_queue::testing::Backend::postgres();
    let set: &'static [Migration] = {
        let mut set = POSTGRES.to_vec();
        set.push(Migration {
            version: POSTGRES.len() as i64 + 1,
            name: "concurrent_index",
            sql: "-- drover:no-transaction\n\
                  DROP INDEX CONCURRENTLY IF EXISTS jobs_created_test;\n\
                  CREATE INDEX CONCURRENTLY jobs_created_test ON jobs (created_at);\n",
        });
        Box::leak(set.into_boxed_slice())
    };
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let store = drover_queue::PgStore::connect(&backend.url(), Default::default())
            .await
            .expect("connect");
        tasks.push(tokio::spawn(async move {
            store.migrate_with(set).await.map(|r| (r, store))
        }));
    }
    let mut applied = Vec::new();
    let mut last = None;
    for task in tasks {
        let (report, store) = task.await.expect("join").expect("migrate");
        applied.extend(report.applied);
        last = Some(store);
    }
    let store = last.expect("a store");
    assert_eq!(
        applied
            .iter()
            .filter(|(_, name)| *name == "concurrent_index")
            .count(),
        1,
        "{applied:?}"
    );
    let valid: bool = sqlx::query_scalar(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relname = 'jobs_created_test' AND n.nspname = current_schema()",
    )
    .fetch_one(store.pool())
    .await
    .expect("the index exists");
    assert!(valid, "the concurrently built index is valid");
    drop(store);
    backend.cleanup().await;
}
