//! flint-queue against real redis-server processes, through real apalis workers: each test
//! below runs twice, against a standalone server (`standalone::…`) and against a Redis Cluster
//! (`cluster::…`). A test is an `async fn(Env)` in its topic's module; one left out of this
//! list is dead code, which the lints refuse.

mod harness;

mod dead_letters;
mod delays;
mod drain;
mod faults;
mod introspection;
mod leases;
mod push;

/// `#[tokio::test]` wrappers, one per listed test, that run it in `$mode`, in modules named
/// after the topics.
macro_rules! tests_in_mode {
    ($mode:ident; $($topic:ident: [$($test:ident),* $(,)?]),* $(,)?) => {
        $(mod $topic {
            $(#[tokio::test]
            async fn $test() {
                crate::$topic::$test(crate::harness::Env::start(crate::harness::Mode::$mode)).await
            })*
        })*
    };
}

/// Every test in both modes. The cluster tests sort together (`cluster::…`), so while they
/// run there is nearly always one holding the shared cluster, and it forms once.
macro_rules! tests_in_both_modes {
    ($($list:tt)*) => {
        mod standalone {
            tests_in_mode!(Standalone; $($list)*);
        }
        mod cluster {
            tests_in_mode!(Cluster; $($list)*);
        }
    };
}

tests_in_both_modes! {
    dead_letters: [
        an_aborted_job_becomes_a_dead_letter_that_can_be_replayed,
        a_handler_error_dead_letters_the_job_with_the_error,
        the_dead_letter_store_is_bounded,
        replaying_while_a_live_job_has_the_id_changes_nothing,
    ],
    delays: [
        a_delayed_job_does_not_run_before_its_time,
        a_handler_retry_runs_the_job_again_at_the_time_it_asked,
        a_retried_job_keeps_its_id_so_pushes_stay_deduplicated,
        two_hundred_thousand_jobs_due_at_once_all_drain,
        a_live_job_marked_again_runs_once_more_at_once_whatever_it_reported,
    ],
    drain: [
        every_pushed_job_runs_once_and_nothing_of_it_stays_in_redis,
        two_workers_share_a_queue_without_running_a_job_twice,
        an_idle_worker_blocks_on_redis_and_starts_a_pushed_job_at_once,
        a_worker_that_stops_gives_back_what_it_did_not_start,
        consumers_of_exited_workers_are_removed_from_the_group,
        a_queue_in_another_queues_slot_runs_its_jobs_with_keys_only_in_that_slot,
    ],
    faults: [
        a_long_job_keeps_its_lease_while_its_worker_lives,
        jobs_of_a_worker_that_vanished_run_elsewhere_after_the_lease,
    ],
    introspection: [
        depth_per_state_and_the_oldest_ready_age_are_reported,
        leased_jobs_are_counted_while_they_run,
        depth_is_exported_as_prometheus_gauges,
        every_key_a_queue_writes_carries_its_hash_tag,
    ],
    leases: [
        a_stalled_worker_loses_its_lease_and_its_late_outcome_changes_nothing,
        a_job_that_keeps_losing_its_lease_is_dead_lettered_with_the_reason,
        a_job_asked_to_run_again_while_it_completes_runs_again_with_its_payload,
        a_run_whose_job_its_own_worker_took_over_cannot_acknowledge_the_new_run,
    ],
    push: [
        pushing_an_id_twice_makes_one_job_and_says_so,
        jobs_without_an_id_get_a_fresh_one,
        invalid_ids_are_refused_and_push_nothing,
        a_finished_job_id_can_be_pushed_again,
    ],
}
