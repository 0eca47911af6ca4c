//! One line of a watch response, decoded as kube decodes it and taken
//! through what the watcher and the store do with the event.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kube_persist::fuzzing::watch_line(data);
});
