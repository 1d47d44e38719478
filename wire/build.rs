//! Compiles the wire contract with protox, a pure-Rust protobuf compiler, so
//! a fresh machine builds without a system `protoc`. The tonic client and
//! server come only with the `grpc` feature.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "../protos/service1/app/grpc/service1.proto";
    let include = "../protos/service1";
    println!("cargo:rerun-if-changed={proto}");
    let grpc = std::env::var_os("CARGO_FEATURE_GRPC").is_some();
    let descriptors = protox::compile([proto], [include])?;
    // The encoded descriptors, for gRPC server reflection.
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("service1_descriptor.bin"), prost::Message::encode_to_vec(&descriptors))?;
    tonic_prost_build::configure()
        .build_client(grpc)
        .build_server(grpc)
        .build_transport(false)
        .compile_fds(descriptors)?;
    Ok(())
}
