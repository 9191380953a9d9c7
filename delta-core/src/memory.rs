//! Process-wide allocator settings for long copies: freed buffers stay with the process.
//!
//! A pass allocates and frees buffers of up to a data chunk (1 MiB) continuously, and a delta's
//! read batches (one 8 MiB segment per thread). With glibc's defaults its `malloc` gives such
//! memory back to the kernel and asks for it again (it maps larger blocks afresh and trims its
//! heaps), so every round trip costs fresh zeroed pages and a page fault per 4 KiB: 22,000
//! faults for a 1 GB pull measured here, against 3,000 with [`keep_freed_memory`]. On virtual
//! machines that report freed memory to the host each such fault costs more again.
//!
//! [`grow_zeroed`] grows the large buffers (a delta's read batches) on
//! transparent huge pages where the kernel offers them on request.
//!
//! The setting is process-wide, so the library never applies it by itself: the `deltasync`
//! binary calls it first thing, and a program embedding delta-core may do the same.

/// Blocks at least this large are still mapped on their own (glibc's upper bound for the
/// threshold on 64-bit systems).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 32 << 20;

/// Free memory at the top of a heap kept for reuse before it is given back.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 128 << 20;

/// Keeps freed blocks below 32 MiB in the process for reuse instead of returning them to the
/// kernel (glibc: fixed `M_MMAP_THRESHOLD` and `M_TRIM_THRESHOLD`; both are needed, as setting
/// one turns off glibc's adaptive choice of the other). Returns whether the settings took
/// effect; with other C libraries it does nothing and returns `false`.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes malloc's tuning parameters; it takes plain integers and
        // is safe to call at any time, from any thread.
        let mmap = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) };
        // SAFETY: as above.
        let trim = unsafe { libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) };
        mmap == 1 && trim == 1
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Grows `buf` to `n` bytes, the new ones zero. New capacity of at least a huge page is
/// offered transparent huge pages first (Linux, where they are enabled "on request", as
/// Debian's and most distributions' kernels are): a delta's read batch of 16 MiB then costs
/// 8 page faults instead of 4,096, and on a virtual machine each fault of fresh memory is
/// dear. Elsewhere, or when the kernel declines, it is an ordinary `resize`.
pub fn grow_zeroed(buf: &mut Vec<u8>, n: usize) {
    if buf.len() >= n {
        return;
    }
    if n > buf.capacity() {
        buf.reserve_exact(n - buf.len());
        let spare = buf.spare_capacity_mut();
        advise_huge_pages(spare.as_mut_ptr() as usize, spare.len());
    }
    buf.resize(n, 0);
}

/// Size of a transparent huge page on x86-64 and aarch64 with 4 KiB pages.
const HUGE_PAGE: usize = 2 << 20;

/// Asks for transparent huge pages on the whole huge pages inside `[addr, addr + len)`.
fn advise_huge_pages(addr: usize, len: usize) {
    let start = addr.next_multiple_of(HUGE_PAGE);
    let end = (addr + len) / HUGE_PAGE * HUGE_PAGE;
    #[cfg(target_os = "linux")]
    if end > start {
        // SAFETY: `[start, end)` lies inside memory this process owns (a vector's capacity,
        // not yet handed out); MADV_HUGEPAGE only changes how the kernel backs those pages,
        // never their contents or mapping, and where unsupported it fails without effect.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (start, end);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grow_zeroed_zero_fills_and_keeps_what_was_there() {
        let mut v = vec![9u8; 5];
        grow_zeroed(&mut v, 3);
        assert_eq!(v, [9; 5], "never shrinks");
        grow_zeroed(&mut v, 5 << 20);
        assert_eq!(v.len(), 5 << 20);
        assert_eq!(&v[..5], &[9; 5]);
        assert!(v[5..].iter().all(|&b| b == 0));
        v[100] = 1;
        v.truncate(10);
        grow_zeroed(&mut v, 4 << 20);
        assert!(
            v[10..].iter().all(|&b| b == 0),
            "reused capacity is zeroed again"
        );
    }

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_accepts_the_settings() {
        assert!(keep_freed_memory());
        // Allocating and freeing chunk-sized buffers still works as before.
        for n in [1usize << 20, 8 << 20, 40 << 20] {
            let v = vec![7u8; n];
            assert_eq!(v.iter().map(|&b| b as usize).sum::<usize>(), 7 * n);
        }
    }
}
