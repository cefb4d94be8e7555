//! Builds the busybox image the examples and tests use, from Debian's
//! busybox-static, because no public registry is reachable from rk's
//! development and CI machines.
//!
//! `rk-mkimage OUT.tar [REFERENCE]` writes an OCI archive (default
//! reference `rk.local/busybox:1`) that a node agent imports from its
//! `DATA_DIR/images/` directory.

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: rk-mkimage OUT.tar [REFERENCE]";
    let Some(out) = args.next() else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    if out.starts_with('-') {
        if out == "-h" || out == "--help" {
            println!("{usage}\nWrites an OCI archive of busybox (default reference rk.local/busybox:1).");
            return;
        }
        eprintln!("error: unknown option {out}\n{usage}");
        std::process::exit(2);
    }
    let reference = args.next().unwrap_or_else(|| "rk.local/busybox:1".into());
    match rk_testkit::agent::build_busybox_archive(std::path::Path::new(&out), &reference) {
        Ok(id) => println!("{reference} {id}"),
        Err(e) => {
            eprintln!("error: building {out}: {e} (is busybox-static installed?)");
            std::process::exit(1);
        }
    }
}
