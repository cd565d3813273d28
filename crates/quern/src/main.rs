//! The `quern` binary: the CLI with the built-in apps.

fn main() -> std::process::ExitCode {
    quern::cli::main(quern::builtin_registry())
}
