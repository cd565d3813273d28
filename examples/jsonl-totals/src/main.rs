//! The example's binary: the whole quern CLI, with `jsonl-totals` added.
//!
//! ```text
//! cargo run -p jsonl-totals -- run --app jsonl-totals --input logs/ --output totals/
//! ```

fn main() -> std::process::ExitCode {
    quern::cli::main(jsonl_totals::registry())
}
