//! Giving memory back after bursts of work (issue 17): glibc keeps in its arenas what
//! berthd frees (a hundred containers at once, a large log read, a restart adopting
//! every container), and the code the burst ran stays mapped, so without this berthd's
//! RSS stays at its peak. Every [`CHECK_EVERY`], when the allocator keeps more than
//! [`FREE_KEPT`] freed and the heap changed since the last time, the heap is trimmed and
//! the pages of read-only file mappings are dropped from berthd's mappings on a blocking
//! thread, as after start-up (`berth_sys::memory::release_startup_memory`: they stay in
//! the page cache and fault back in without I/O); idle, the check is one `mallinfo2`
//! call. (The allocator's thresholds are fixed at start as well:
//! `berth_sys::memory::tune_allocator_for_daemon`.)

use std::time::Duration;

use berth_sys::memory::{heap_stats, release_startup_memory, HeapStats};

/// How often the allocator's free bytes are looked at.
const CHECK_EVERY: Duration = Duration::from_secs(5);
/// Freed heap kept without a trim: what the next requests reuse anyway.
const FREE_KEPT: u64 = 1 << 20;

/// How much the heap must have changed since the last trim for another.
const CHANGED: u64 = 256 << 10;

/// Whether a heap with counts `now` is worth trimming, `last` after the last trim: a
/// trim leaves the counts as they were (the pages given back stay counted as free).
fn worth_trimming(now: &HeapStats, last: &HeapStats) -> bool {
    let moved = |a: u64, b: u64| a.abs_diff(b) > CHANGED;
    now.free_bytes > FREE_KEPT
        && (moved(now.free_bytes, last.free_bytes)
            || moved(now.in_use_bytes, last.in_use_bytes)
            || moved(now.arena_bytes, last.arena_bytes))
}

/// Runs the trimmer until the runtime shuts down.
pub(crate) fn spawn_trimmer() {
    tokio::spawn(async {
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = HeapStats::default();
        loop {
            tick.tick().await;
            let trimmed = tokio::task::spawn_blocking(move || {
                let before = heap_stats();
                if !worth_trimming(&before, &last) {
                    return None;
                }
                release_startup_memory();
                Some((before, heap_stats()))
            })
            .await;
            if let Ok(Some((before, after))) = trimmed {
                last = after;
                tracing::debug!(
                    free_before = before.free_bytes,
                    free_after = after.free_bytes,
                    in_use = after.in_use_bytes,
                    arena_before = before.arena_bytes,
                    arena_after = after.arena_bytes,
                    "gave freed heap and idle code pages back"
                );
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_past_what_the_next_requests_reuse_and_only_after_a_change() {
        let free = |free_bytes| HeapStats {
            free_bytes,
            ..HeapStats::default()
        };
        let never = HeapStats::default();
        assert!(!worth_trimming(&free(0), &never));
        assert!(!worth_trimming(&free(FREE_KEPT), &never));
        assert!(worth_trimming(&free(FREE_KEPT + 1), &never));
        // Idle after a trim: the same counts, no second trim.
        let big = free(40 << 20);
        assert!(!worth_trimming(&big, &big));
        let grown = HeapStats {
            in_use_bytes: 1 << 20,
            ..big
        };
        assert!(worth_trimming(&grown, &big));
    }
}
