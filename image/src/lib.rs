//! OCI image store (being written).
