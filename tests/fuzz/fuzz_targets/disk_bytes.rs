//! Values as the store's engine hands them to its readers: object and
//! journal records (zstd + crc32 envelope), state, cursors, dictionaries,
//! short names, and keys.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kube_persist::fuzzing::disk_bytes(data);
});
