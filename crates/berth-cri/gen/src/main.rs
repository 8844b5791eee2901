//! Writes the CRI v1 server code generated from `proto/api.proto` into `src/proto/`.
//!
//! Debian 12's protoc (3.21) predates the `debug_redact` field option the .proto uses on
//! credentials; prost ignores it anyway, so it is dropped from a temporary copy, and
//! `AuthConfig` gets no derived `Debug` (berth-cri writes one that redacts those fields).
fn main() {
    let crate_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let proto = std::fs::read_to_string(crate_dir.join("proto/api.proto"))
        .expect("proto/api.proto is readable");
    let tmp = std::env::temp_dir().join(format!("berth-cri-gen-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("temporary directory");
    std::fs::write(tmp.join("api.proto"), proto.replace(" [debug_redact = true]", ""))
        .expect("temporary copy of api.proto");
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .skip_debug(["runtime.v1.AuthConfig"])
        .out_dir(crate_dir.join("src/proto"))
        .compile_protos(&[tmp.join("api.proto")], &[tmp.clone()])
        .expect("protoc and tonic-prost-build generate the CRI code");
    let _ = std::fs::remove_dir_all(&tmp);
}
