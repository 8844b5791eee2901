//! Giving back memory that only start-up needed: freed heap, and the pages of our own
//! executable that initialisation touched (the shim does the same once its container
//! runs). What later work uses faults back in. Also the allocator's own account of the
//! heap ([`heap_stats`]) and giving freed heap back after a burst of work
//! ([`release_free_heap`]).

/// The C allocator's (glibc's) account of this process's heap, from `mallinfo2`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeapStats {
    /// Bytes the allocator holds from the kernel in its arenas (`sbrk` and arena mmaps).
    pub arena_bytes: u64,
    /// Bytes in large blocks mapped one by one (given back as soon as they are freed).
    pub mmapped_bytes: u64,
    /// Bytes allocated and not freed.
    pub in_use_bytes: u64,
    /// Bytes freed and kept by the allocator for reuse (what a trim can give back, less
    /// fragmentation).
    pub free_bytes: u64,
}

/// The allocator's account of the heap now.
pub fn heap_stats() -> HeapStats {
    // SAFETY: mallinfo2 only reads the allocator's counters and returns them by value.
    let m = unsafe { libc::mallinfo2() };
    let b = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
    HeapStats {
        arena_bytes: b(m.arena),
        mmapped_bytes: b(m.hblkhd),
        in_use_bytes: b(m.uordblks),
        free_bytes: b(m.fordblks),
    }
}

/// Blocks at least this large are mapped on their own and unmapped when freed.
const MMAP_THRESHOLD: i32 = 256 << 10;
/// Free space at the top of an arena beyond this goes back to the kernel when freed.
const TRIM_THRESHOLD: i32 = 256 << 10;

/// Fixes the allocator's thresholds for a long-running daemon. glibc raises both with
/// every large block freed (up to 32 MiB and 64 MiB), so after one large log read each
/// thread's arena kept its buffers for ever (measured: berthd at 57 MiB RSS, 4.3 MiB in
/// each of five arenas, after `docker logs` of 100 MB ten times). Fixed thresholds keep
/// large buffers mapped block by block and arenas' tops trimmed. Call before threads
/// start.
pub fn tune_allocator_for_daemon() {
    // SAFETY: mallopt only sets the allocator's parameters; both are documented ints.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

/// Gives the heap's free pages back to the kernel in every arena (`malloc_trim(0)`):
/// after a burst of work (many containers, a large log read) the allocator otherwise
/// keeps what it freed. Blocking for as long as the arenas take to walk (well under a
/// millisecond for berthd's): call it off the async workers.
pub fn release_free_heap() {
    // SAFETY: malloc_trim only returns free heap memory to the kernel.
    unsafe { libc::malloc_trim(0) };
}

/// Returns freed heap to the kernel (`malloc_trim`) and drops the pages of this process's
/// executable from its mappings (`MADV_PAGEOUT`, clean file-backed pages only; another
/// process mapping them keeps them). Best effort: errors are ignored.
pub fn release_startup_memory() {
    // SAFETY: malloc_trim only returns free heap memory to the kernel.
    unsafe { libc::malloc_trim(0) };
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
        return;
    };
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    for line in maps.lines() {
        // "start-end perms offset dev inode path"
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        if fields.nth(3) != exe.to_str() || perms.contains('w') {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        // SAFETY: a read-only, file-backed mapping of our own executable, as the kernel
        // listed it; MADV_PAGEOUT only drops clean pages, which fault back in on use.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_PAGEOUT) };
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn heap_stats_see_a_large_block_and_its_release() {
        // Above glibc's mmap threshold: mapped on its own, unmapped when freed (no other
        // test here maps blocks this large, so the counts are this test's).
        const SIZE: u64 = 8 << 20;
        let before = super::heap_stats();
        let block = vec![7u8; SIZE as usize];
        let during = super::heap_stats();
        assert!(
            during.mmapped_bytes >= before.mmapped_bytes + SIZE,
            "{before:?} {during:?}"
        );
        drop(std::hint::black_box(block));
        super::release_free_heap();
        let after = super::heap_stats();
        assert!(
            after.mmapped_bytes + SIZE <= during.mmapped_bytes,
            "{during:?} {after:?}"
        );
    }

    #[test]
    fn releasing_keeps_the_process_working() {
        super::release_startup_memory();
        // Code and read-only data fault back in.
        assert_eq!(format!("{}", 6 * 7), "42");
    }
}
