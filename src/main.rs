//! The `kube-persist` binary: parses arguments, calls the library, renders.

mod cli;

fn main() -> std::process::ExitCode {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // sled panics on some damaged files; the store catches those panics
        // and returns a corruption error that the binary renders on one line.
        if info.location().is_some_and(|l| l.file().contains("/sled-")) {
            return;
        }
        default_hook(info)
    }));
    cli::main()
}
