//! Running the same tests in both of Flint's Redis layouts: one partition (every key under the
//! queue's own hash tag) and three (`[queue] partitions = 3`). A test thread says which it
//! wants before it builds its apps; the apps' builders read it.

use std::cell::Cell;

thread_local! {
    /// `[queue] partitions` of the apps this test thread builds ([`in_partitions`]).
    static PARTITIONS: Cell<u16> = const { Cell::new(1) };
}

/// Apps built on this thread from now on spread payments over `count` partitions.
pub fn in_partitions(count: u16) {
    PARTITIONS.with(|p| p.set(count));
}

/// The partition count apps built on this thread use: 1 unless [`in_partitions`] said otherwise.
pub fn partitions() -> u16 {
    PARTITIONS.with(Cell::get)
}

/// Runs each named test (an `async fn` of the calling module) twice: with one partition, and
/// with three (the merge of listings, ids drawn into their key's partition, endpoints marked in
/// every partition, every worker serving every partition).
#[macro_export]
macro_rules! in_both_layouts {
    ($($name:ident),* $(,)?) => {
        mod one_partition {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name().await;
                }
            )*
        }
        mod three_partitions {
            $(
                #[tokio::test]
                async fn $name() {
                    $crate::layouts::in_partitions(3);
                    super::$name().await;
                }
            )*
        }
    };
}
