//! Giving back memory that only start-up needed: freed heap, and this process's page-table
//! entries for the code and read-only data that initialisation touched (the shim does the
//! same once its container runs). What later work uses faults back in. Also the
//! allocator's own account of the heap ([`heap_stats`]), its thresholds for a daemon, and
//! giving freed heap back after a burst of work ([`release_free_heap`]).

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

/// Drops this process's mappings of the pages of read-only files it has mapped (its
/// executable's and libraries' code and read-only data) and returns freed heap to the
/// kernel (`malloc_trim`). Best effort: errors are ignored.
///
/// `MADV_DONTNEED` on a private file mapping only unmaps: the pages stay in the page cache
/// (shared with every other process running the same binary) and fault back in, without
/// I/O, when used. It would discard copied-on-write pages (a relocated `.data.rel.ro`),
/// so only mappings that hold none (`Anonymous: 0 kB`) are dropped: a read-only mapping
/// cannot gain one between the read of `smaps` and the call. (`MADV_PAGEOUT` would evict
/// the pages from the page cache instead, and leaves alone any page another process maps,
/// which with 100 shims is every one.)
pub fn release_startup_memory() {
    if let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") {
        for (start, end) in clean_file_mappings(&smaps) {
            // SAFETY: a mapping the kernel listed as file-backed, not writable and holding
            // no anonymous (copied-on-write) page: every page of it equals the file's
            // content, which the next access maps again.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
        }
    }
    release_stack_below_here();
    // Last: the smaps text above is freed by now.
    // SAFETY: malloc_trim only returns free heap memory to the kernel.
    unsafe { libc::malloc_trim(0) };
}

/// How much of the stack below the caller's frame is kept: this function's own frames and
/// the `madvise` call's, with room to spare (x86-64's red zone is 128 bytes).
const STACK_KEPT: usize = 16 * 1024;

/// Drops the pages of the main thread's stack that lie below the calling frame: set-up
/// (libcontainer, spec parsing) went deep once; the event loop does not. A dropped page
/// holds only dead frames, and comes back zero-filled when a deeper call writes it again.
/// Called on another thread (berthd's blocking pool) the caller is not on that stack, and
/// nothing is dropped.
#[inline(never)]
fn release_stack_below_here() {
    let here = 0u8;
    let sp = std::ptr::addr_of!(here) as usize;
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    let Some((start, end)) = maps
        .lines()
        .find(|l| l.ends_with("[stack]"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|r| r.split_once('-'))
        .and_then(|(s, e)| {
            Some((
                usize::from_str_radix(s, 16).ok()?,
                usize::from_str_radix(e, 16).ok()?,
            ))
        })
    else {
        return;
    };
    if !(start..end).contains(&sp) {
        return;
    }
    let below = sp.saturating_sub(STACK_KEPT) & !(page_size() - 1);
    if below > start {
        // SAFETY: [start, below) is the part of the main thread's stack more than
        // STACK_KEPT below a local of this, the running frame (checked to be on that
        // stack): no frame is live there, and no signal handler runs on it meanwhile
        // (it would run below the current frame, within STACK_KEPT, and is dead once it
        // returns). Zero-filled pages replace the dropped ones.
        unsafe {
            libc::madvise(
                start as *mut libc::c_void,
                below - start,
                libc::MADV_DONTNEED,
            )
        };
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n)
        .ok()
        .filter(|n| n.is_power_of_two())
        .unwrap_or(4096)
}

/// The `(start, end)` of each mapping in `smaps` that is backed by a file (a path), is not
/// writable and has no anonymous page.
fn clean_file_mappings(smaps: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    // The mapping whose attribute lines follow, while it is still a candidate.
    let mut current: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else {
            continue;
        };
        if let Some(key) = first.strip_suffix(':') {
            // An attribute of the current mapping: "Anonymous:   4 kB".
            if key == "Anonymous" && fields.next() != Some("0") {
                current = None;
            }
            continue;
        }
        // A new mapping: "start-end perms offset dev inode path".
        if let Some(done) = current.take() {
            out.push(done);
        }
        let perms = fields.next().unwrap_or("w");
        let path = fields.nth(3).unwrap_or("");
        let range = first.split_once('-').and_then(|(s, e)| {
            Some((
                usize::from_str_radix(s, 16).ok()?,
                usize::from_str_radix(e, 16).ok()?,
            ))
        });
        if let Some((start, end)) = range {
            if path.starts_with('/') && !perms.contains('w') && start < end {
                current = Some((start, end));
            }
        }
    }
    out.extend(current);
    out
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Seek, SeekFrom, Write};
    use std::os::fd::AsRawFd;

    const PAGE: usize = 4096;

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

    #[test]
    fn only_clean_read_only_file_mappings_are_listed() {
        let smaps = "\
55d0-55e0 r--p 00000000 fe:01 42 /usr/bin/shim
Rss:                  16 kB
Anonymous:             0 kB
VmFlags: rd mr mw me
55e0-5600 r-xp 00001000 fe:01 42 /usr/bin/shim
Anonymous:             0 kB
5600-5610 r--p 00003000 fe:01 42 /usr/bin/shim
Anonymous:            16 kB
5610-5620 rw-p 00004000 fe:01 42 /usr/bin/shim
Anonymous:             0 kB
5620-5630 rw-p 00000000 00:00 0 [heap]
Anonymous:            16 kB
7000-7010 r--p 00000000 00:00 0 [vvar]
Anonymous:             0 kB
7010-7020 r-xp 00000000 fe:01 7 /lib/x86_64-linux-gnu/libc.so.6 (deleted)
Anonymous:             0 kB
";
        assert_eq!(
            super::clean_file_mappings(smaps),
            vec![(0x55d0, 0x55e0), (0x55e0, 0x5600), (0x7010, 0x7020)]
        );
        assert_eq!(super::clean_file_mappings("garbage\n-\n: 1\n"), vec![]);
    }

    /// Whether this process has the page at `addr` mapped now (`/proc/self/pagemap`'s
    /// "present" bit, readable without privilege).
    fn present(addr: usize) -> bool {
        let mut f = std::fs::File::open("/proc/self/pagemap").unwrap();
        f.seek(SeekFrom::Start((addr / PAGE * 8) as u64)).unwrap();
        let mut entry = [0u8; 8];
        f.read_exact(&mut entry).unwrap();
        u64::from_le_bytes(entry) >> 63 == 1
    }

    fn map(fd: libc::c_int, prot: libc::c_int, flags: libc::c_int) -> *mut u8 {
        // SAFETY: a new mapping of two pages of a file of two pages, at an address the
        // kernel chooses; nothing else refers to it.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), 2 * PAGE, prot, flags, fd, 0) };
        assert_ne!(p, libc::MAP_FAILED);
        p.cast()
    }

    #[test]
    fn shared_read_only_pages_are_unmapped_and_copies_kept() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&[7u8; 2 * PAGE]).unwrap();
        let fd = file.as_raw_fd();
        // Code as the shim maps it: private, read-only, and the same pages mapped by
        // another mapping too (100 shims run one binary).
        let code = map(fd, libc::PROT_READ, libc::MAP_PRIVATE);
        let other = map(fd, libc::PROT_READ, libc::MAP_SHARED);
        // A relocated .data.rel.ro: written after mapping, read-only since.
        let relro = map(fd, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE);
        // SAFETY: all three point to two mapped, readable pages; `relro` is writable
        // until the mprotect, which covers exactly its two pages.
        unsafe {
            assert_eq!(code.read_volatile(), 7);
            assert_eq!(other.read_volatile(), 7);
            relro.write_volatile(9);
            assert_eq!(libc::mprotect(relro.cast(), 2 * PAGE, libc::PROT_READ), 0);
        }
        assert!(present(code as usize));
        super::release_startup_memory();
        assert!(
            !present(code as usize),
            "the shared read-only page is still mapped"
        );
        // SAFETY: as above; the mappings are still there (only their pages went), and are
        // unmapped once, here.
        unsafe {
            assert_eq!(code.read_volatile(), 7, "faults back in from the file");
            assert_eq!(relro.read_volatile(), 9, "the copied page was kept");
            for p in [code, other, relro] {
                libc::munmap(p.cast(), 2 * PAGE);
            }
        }
    }
}
