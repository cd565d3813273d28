//! `quern-testkit`: the quern CLI with the test apps registered, built the
//! way a user builds a binary with their own apps.

fn main() -> std::process::ExitCode {
    quern::cli::main(quern_testkit::registry())
}
