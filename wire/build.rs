//! Compiles the wire contract with protox, a pure-Rust protobuf compiler, so
//! a fresh machine builds without a system `protoc`. The tonic client and
//! server come only with the `grpc` feature.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "../protos/service1/app/grpc/service1.proto";
    // The ObjectId message, in its own file that other protos import.
    let object_id = "../protos/bson/bson/object_id.proto";
    let includes = ["../protos/service1", "../protos/bson"];
    println!("cargo:rerun-if-changed={proto}");
    println!("cargo:rerun-if-changed={object_id}");
    let grpc = std::env::var_os("CARGO_FEATURE_GRPC").is_some();
    // With its imports: reflection describes bson.ObjectId too.
    let descriptors = protox::compile([proto], includes)?;
    // The encoded descriptors, for gRPC server reflection.
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("service1_descriptor.bin"), prost::Message::encode_to_vec(&descriptors))?;
    tonic_prost_build::configure()
        .build_client(grpc)
        .build_server(grpc)
        .build_transport(false)
        // One module per package (app::grpc, bson), so that generated
        // code refers from one package to the other.
        .include_file("protos.rs")
        .compile_fds(descriptors)?;
    Ok(())
}
