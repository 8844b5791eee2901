//! Giving back memory that only start-up needed: freed heap, and the pages of our own
//! executable that initialisation touched (the shim does the same once its container
//! runs). What later work uses faults back in.

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
    fn releasing_keeps_the_process_working() {
        super::release_startup_memory();
        // Code and read-only data fault back in.
        assert_eq!(format!("{}", 6 * 7), "42");
    }
}
