fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Use the vendored protoc unless the builder points at another one, so a
    // fresh machine needs no protobuf package.
    if std::env::var_os("PROTOC").is_none() {
        let protoc = protoc_bin_vendored::protoc_bin_path()?;
        // SAFETY: build scripts are single-threaded; nothing else reads the
        // environment concurrently.
        unsafe { std::env::set_var("PROTOC", protoc) };
    }
    println!("cargo:rerun-if-changed=proto/rk.proto");
    tonic_prost_build::configure()
        // A snapshot chunk's data as `Bytes`: the sender keeps a handle on
        // it (to resend as JSON to a replica that lacks the RPC) without
        // copying megabytes for every chunk.
        .bytes(".rk.v1.SnapshotChunk.data")
        // Raft messages as `Bytes` too: a follower decodes an AppendEntries
        // of many MiB from the received buffer itself, not from a copy.
        .bytes(".rk.v1.RaftBytes.data")
        .compile_protos(&["proto/rk.proto"], &["proto"])?;
    Ok(())
}
