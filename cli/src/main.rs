//! The `rkctl` binary: see the library for everything else.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let code = rkctl::run().await;
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
