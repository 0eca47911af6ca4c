//! The `kube-persist` binary: parses arguments, calls the library, renders.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
