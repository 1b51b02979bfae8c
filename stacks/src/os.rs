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
