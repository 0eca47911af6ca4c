//! The `kube-persist` binary: parses arguments, calls the library, renders.

mod cli;

fn main() -> std::process::ExitCode {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // sled panics on some damaged files; the store catches those panics
        // and returns an error that the binary renders on one line.
        if kube_persist::store::catching_storage_panic() {
            return;
        }
        default_hook(info)
    }));
    cli::main()
}
