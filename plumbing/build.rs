//! Compiles the wire contract with protox, a pure-Rust protobuf compiler, so
//! a fresh machine builds without a system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "../protos/service1/app/grpc/service1.proto";
    let include = "../protos/service1";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], [include])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
