fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "../../protos/service1/app/grpc/service1.proto";
    println!("cargo:rerun-if-changed={proto}");
    // service1.proto imports bson/object_id.proto (ProcessNameResponse.id).
    let descriptors = protox::compile([proto], ["../../protos/service1", "../../protos/bson"])?;
    tonic_prost_build::configure().include_file("protos.rs").compile_fds(descriptors)?;
    Ok(())
}
