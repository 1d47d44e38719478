fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "../../protos/service1/app/grpc/service1.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["../../protos/service1"])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
