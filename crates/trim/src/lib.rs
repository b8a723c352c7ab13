//! Handing freed heap memory back to the system.
//!
//! glibc keeps what a program frees inside its arenas. A long-running
//! controller replaces thousands of differently sized buffers on every pass,
//! and the free holes between live allocations stay resident: at 10,000
//! objects RSS settled ~20 MB above the live heap. `malloc_trim(0)` returns
//! every whole free page in every arena (not only the top of the heap).

/// Returns freed heap pages to the system; true when some were. A no-op
/// (false) where the allocator is not glibc's.
pub fn trim() -> bool {
    imp::trim()
}

/// Caps glibc's malloc arenas at `n` (it makes up to 8 per core, one per
/// thread that contends): each arena keeps its own free holes. Call before
/// the threads start. False where the allocator is not glibc's.
pub fn limit_arenas(n: usize) -> bool {
    imp::limit_arenas(n)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod imp {
    #[allow(unsafe_code)]
    pub(super) fn limit_arenas(n: usize) -> bool {
        let n = libc::c_int::try_from(n.max(1)).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt takes two integers and only sets a parameter of
        // the allocator, under its lock.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, n) == 1 }
    }

    #[allow(unsafe_code)]
    pub(super) fn trim() -> bool {
        // SAFETY: malloc_trim takes no pointers and only walks the
        // allocator's own free lists under its locks; any thread may call
        // it at any time.
        unsafe { libc::malloc_trim(0) == 1 }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod imp {
    pub(super) fn trim() -> bool {
        false
    }

    pub(super) fn limit_arenas(_: usize) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn the_arena_limit_is_accepted() {
        assert!(super::limit_arenas(2));
        assert!(
            super::limit_arenas(0),
            "0 is taken as 1, not as glibc's default"
        );
    }

    /// After a large allocation pattern is freed, trimming hands pages
    /// back: the resident set shrinks.
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn freed_pages_go_back_to_the_system() {
        fn rss_kb() -> u64 {
            let status = std::fs::read_to_string("/proc/self/status").expect("status");
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
                .expect("VmRSS")
        }
        // Small blocks (below the mmap threshold), every other one kept, so
        // the freed half is holes the top-of-heap trim cannot return.
        let mut blocks: Vec<Vec<u8>> = (0..200_000).map(|i| vec![i as u8; 900]).collect();
        let kept: Vec<Vec<u8>> = blocks
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| i % 8 == 0)
            .map(|(_, b)| std::mem::take(b))
            .collect();
        drop(blocks);
        let before = rss_kb();
        assert!(super::trim(), "nothing was returned");
        let after = rss_kb();
        assert!(
            after + 50_000 < before,
            "RSS {before} kB -> {after} kB after trimming"
        );
        assert_eq!(kept.len(), 25_000);
        assert!(kept.iter().enumerate().all(|(i, b)| b[0] == (i * 8) as u8));
    }
}
