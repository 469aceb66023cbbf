//! `wasmtime run`, exactly as the stock `wasmtime` CLI runs it: the command is the
//! wasmtime-cli crate's own `RunCommand` (its WASI and wasi:http linkers, its `-S`/`--dir`/
//! `--invoke` options); only the dispatcher around it is ours, reduced to `run`. Built with
//! the workspace, it shares its wasmtime and Cranelift with the bundled host instead of a
//! second `cargo install wasmtime-cli` build (several minutes on two cores).

use clap::Parser;
use wasmtime_cli::commands::RunCommand;

/// The subset of the `wasmtime` CLI the runtime tests use.
#[derive(Parser)]
#[command(name = "wasmtime", version = env!("WASMTIME_CLI_VERSION"))]
enum Wasmtime {
    /// Runs a WebAssembly module or component
    Run(RunCommand),
}

fn main() -> wasmtime::Result<()> {
    match Wasmtime::parse() {
        Wasmtime::Run(command) => command.execute(),
    }
}
