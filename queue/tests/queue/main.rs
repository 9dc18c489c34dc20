//! flint-queue against real redis-server processes, through real apalis workers.

mod harness;

mod dead_letters;
mod delays;
mod drain;
mod faults;
mod introspection;
mod leases;
mod push;
