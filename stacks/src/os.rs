//! Thin wrappers over the system calls the stack arenas need.
//!
//! Every `unsafe` call into libc for memory management lives here, behind
//! functions whose arguments are plain addresses and lengths. The callers
//! (arena, pool, overflow) only ever pass ranges inside mappings they own.

use std::io;

/// `MADV_GUARD_INSTALL` (Linux >= 6.13): turns a range of a private anonymous
/// mapping into guard markers without splitting the VMA. Not yet in `libc`.
pub const MADV_GUARD_INSTALL: libc::c_int = 102;

/// The page size, read once.
pub fn page_size() -> usize {
    use std::sync::OnceLock;
    static PAGE: OnceLock<usize> = OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf has no memory-safety preconditions.
        let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if p > 0 { p as usize } else { 4096 }
    })
}

/// Reserves `len` bytes of read-write address space that the kernel commits
/// page by page on first touch (`MAP_NORESERVE`: no swap is accounted).
pub fn reserve(len: usize) -> io::Result<usize> {
    // SAFETY: an anonymous private mapping at an address of the kernel's
    // choosing cannot alias any existing Rust object.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(p as usize)
}

/// Installs guard markers over `[addr, addr + len)` with `MADV_GUARD_INSTALL`.
/// The range must lie inside a mapping made by [`reserve`].
pub fn guard_install(addr: usize, len: usize) -> io::Result<()> {
    // SAFETY: the range is inside one of our own anonymous mappings and holds
    // no Rust objects (it is the never-used low end of a stack slot).
    let r = unsafe { libc::madvise(addr as *mut libc::c_void, len, MADV_GUARD_INSTALL) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `PIDFD_SELF_THREAD`: names the calling thread, so its process's memory,
/// in pidfd system calls without an open pidfd (which a forked child would
/// inherit still naming its parent). Kernels that predate the sentinel
/// (it is newer than 6.13's guard markers; this 6.18 kernel has it) refuse
/// it with `EBADF`. Its process-wide sibling is not used: one early
/// version of the patch numbered it differently.
const PIDFD_SELF_THREAD: libc::c_int = -10000;

/// Most ranges one [`guard_install_many`] call takes (the kernel's
/// `UIO_MAXIOV` is 1024).
pub const GUARD_BATCH_MAX: usize = 64;

/// Installs guard markers over `[base, base + len)` for every base with one
/// `process_madvise` call on this process. Returns how many ranges, from the
/// first, have their guard: the kernel stops at the first range that fails,
/// and a failure before any range is done is an error. Kernels without the
/// self pidfd and seccomp profiles refuse the call as a whole.
pub fn guard_install_many(bases: &[usize], len: usize) -> io::Result<usize> {
    let mut iov = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; GUARD_BATCH_MAX];
    let n = bases.len().min(GUARD_BATCH_MAX);
    for (v, &base) in iov.iter_mut().zip(&bases[..n]) {
        *v = libc::iovec {
            iov_base: base as *mut libc::c_void,
            iov_len: len,
        };
    }
    // SAFETY: the kernel only reads `n` iovecs from our array; each range is
    // inside one of our own anonymous mappings and holds no Rust objects (as
    // for `guard_install`).
    let r = unsafe {
        libc::syscall(
            libc::SYS_process_madvise,
            PIDFD_SELF_THREAD,
            iov.as_ptr(),
            n,
            MADV_GUARD_INSTALL,
            0,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r as usize / len)
}

/// Makes `[addr, addr + len)` inaccessible with `mprotect`, the fallback guard.
/// This splits the mapping: two more entries in `/proc/self/maps`.
pub fn protect_none(addr: usize, len: usize) -> io::Result<()> {
    // SAFETY: as for `guard_install`: our own mapping, no live objects inside.
    let r = unsafe { libc::mprotect(addr as *mut libc::c_void, len, libc::PROT_NONE) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Gives the physical pages of `[addr, addr + len)` back to the kernel; the
/// next touch sees zero-filled pages. Guard markers stay in place.
pub fn release(addr: usize, len: usize) {
    if len == 0 {
        return;
    }
    // SAFETY: callers only release the part of a stack slot that no live
    // coroutine or frame uses (the stack is in the pool, not running).
    let r = unsafe { libc::madvise(addr as *mut libc::c_void, len, libc::MADV_DONTNEED) };
    debug_assert_eq!(
        r,
        0,
        "madvise(MADV_DONTNEED) failed: {}",
        io::Error::last_os_error()
    );
}

/// Counts resident pages of `[addr, addr + len)` with `mincore`, `addr`
/// page-aligned. Works through the range in pieces with a fixed buffer.
pub fn resident_pages(addr: usize, len: usize) -> io::Result<usize> {
    const CHUNK_PAGES: usize = 4096;
    let page = page_size();
    let mut vec = [0u8; CHUNK_PAGES];
    let mut resident = 0;
    let mut at = addr;
    let end = addr + len;
    while at < end {
        let n = ((end - at) / page).min(CHUNK_PAGES);
        // SAFETY: `vec` has room for `n` entries, one per page of the range;
        // mincore only reads page tables for an address range we mapped.
        let r = unsafe { libc::mincore(at as *mut libc::c_void, n * page, vec.as_mut_ptr()) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        resident += vec[..n].iter().filter(|b| **b & 1 == 1).count();
        at += n * page;
    }
    Ok(resident)
}

/// Reads an integer from a file under `/proc/sys`.
pub fn read_sysctl(path: &str) -> Option<usize> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Number of memory mappings this process has right now.
pub fn count_mappings() -> usize {
    std::fs::read("/proc/self/maps")
        .map(|b| b.iter().filter(|c| **c == b'\n').count())
        .unwrap_or(0)
}
