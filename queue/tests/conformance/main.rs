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
    event_log_is_sequenced_without_gaps,
    list_filters_and_pages_newest_first,
    one_leader_at_a_time,
    workers_report_their_heartbeat,
    notifier_wakes_on_enqueue_and_control,
    effects_are_recorded_once_and_fenced,
    artifacts_are_stored_listed_and_fenced,
    nul_characters_are_refused_alike,
    finished_jobs_are_pruned_after_their_retention,
    schedules_are_created_replaced_and_deleted,
    each_tick_enqueues_one_job_across_racing_evaluators,
    missed_ticks_catch_up_inside_the_window_only,
    overlap_policies_hold_back_skip_or_cancel,
    a_changed_template_does_not_conflict_with_a_fired_tick,
);
