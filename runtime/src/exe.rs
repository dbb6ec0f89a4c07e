//! The executable's own program headers: the first object `dl_iterate_phdr` reports is the
//! executable itself. The preemption handler takes the range of its code from them (a safe
//! point is in the program's own code), and the inlined fast paths the extent of its TLS
//! block (their thread-local is at a fixed offset only there).

/// The executable's load address and a copy of its program headers.
pub(crate) fn program_headers() -> (usize, Vec<libc::Elf64_Phdr>) {
    unsafe extern "C" fn first(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: the loader passes a valid info with `dlpi_phnum` program headers, and
        // `data` is the pair below, which nothing else touches during the call.
        let (info, out) = unsafe { (&*info, &mut *(data as *mut (usize, Vec<libc::Elf64_Phdr>))) };
        out.0 = info.dlpi_addr as usize;
        for i in 0..info.dlpi_phnum as usize {
            // SAFETY: as above.
            out.1.push(unsafe { *info.dlpi_phdr.add(i) });
        }
        // The first object is the executable: stop there.
        1
    }
    let mut out: (usize, Vec<libc::Elf64_Phdr>) = (0, Vec::new());
    // SAFETY: the callback only reads what the loader hands it and writes `out`.
    unsafe {
        libc::dl_iterate_phdr(
            Some(first),
            &mut out as *mut (usize, Vec<libc::Elf64_Phdr>) as *mut libc::c_void,
        )
    };
    out
}
