#[allow(unsafe_code)] // two allocator settings, below
fn main() {
    // glibc's defaults cost the first run over a large directory ~10 MiB of peak memory:
    // - every thread that allocates gets its own arena (up to 8 per core), and memory freed in
    //   one is not reused by another: hashing on all cores, then recording, left ~4 MiB in idle
    //   arenas. Two arenas keep the threads from contending on one lock without that cost.
    // - a freed block of a megabyte or more (a manifest, a stat cache row, a table of 20,000
    //   entries) raises the size above which blocks are mapped on their own, so the next ones
    //   come from the heap and stay resident once freed. A fixed 1 MiB keeps them mapped, and
    //   returned when freed (20,000 files: 34 MiB → 31 MiB, no measurable cost to a no-op run).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
    std::process::exit(mlrun::main_entry());
}
