#[allow(unsafe_code)] // one allocator setting, below
fn main() {
    // glibc gives every thread that allocates its own arena (up to 8 per core), and memory
    // freed in one is not reused by another: hashing 20,000 files on all cores, then recording
    // them, left ~4 MiB of the first run's peak memory in idle arenas. Two arenas keep the
    // threads from contending on one lock without that cost.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it is called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    std::process::exit(mlrun::main_entry());
}
