//! The queue's job operations as Lua, for the queue's own scripts and for scripts of its users
//! that must move a job in the same atomic step as their own data (a payment's record and its
//! charge job are written together or not at all).
//!
//! [`LIBRARY`] defines `fq_queue(i)`, `fq_push`, `fq_run_now`, `fq_unschedule` and
//! `fq_state` (documented in the file). A script built with [`script`] starts with it and
//! passes the queue's job keys ([`crate::keys::Keys::job_keys`]) as four consecutive `KEYS`.
//! That is the whole contract: no other code writes the layout, so a change to it changes
//! every script that uses it.

/// The job operations, as Lua source.
pub const LIBRARY: &str = include_str!("lua/jobs.lua");

/// A script whose body may call the job operations.
pub fn script(body: &str) -> redis::Script {
    redis::Script::new(&format!("{LIBRARY}\n{body}"))
}
