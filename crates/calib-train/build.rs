//! Compiles the fused-optimiser shim (cpp/fused.cpp) against the project's libtorch headers
//! (`LIBTORCH`, set by .cargo/config.toml); the kernels are in libtorch_cpu.so (and, on a GPU
//! machine, libtorch_cuda.so), which torch-sys links.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=cpp/fused.cpp");
    println!("cargo:rerun-if-changed=cpp/guarded.hpp");
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let libtorch = PathBuf::from(std::env::var("LIBTORCH").expect(
        "LIBTORCH is not set: run scripts/setup.sh, which lays libtorch out in .deps/ (.cargo/config.toml points LIBTORCH there)",
    ));
    let include = libtorch.join("include");
    cc::Build::new()
        .cpp(true)
        .file("cpp/fused.cpp")
        .std("c++17")
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        // libtorch's headers are not warning-clean under the default flags.
        .warnings(false)
        .flag("-w")
        .compile("calib_fused");
}
