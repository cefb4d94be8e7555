//! `rk-shim`: creates and supervises one container, or runs one exec in it.
//! The logic lives in `rk_runtime::linux::shim` so it is built and linted with the library.

fn main() {
    std::process::exit(rk_runtime::linux::shim::main());
}
