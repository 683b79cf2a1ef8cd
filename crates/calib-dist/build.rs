//! Compiles the c10d shim (cpp/shim.cpp) with Gloo against the project's libtorch headers
//! (`LIBTORCH`, set by .cargo/config.toml) and Debian's Gloo headers (`libgloo-dev`, installed by
//! scripts/setup.sh). The c10d code itself is in libtorch_cpu.so, which torch-sys links.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=cpp/shim.cpp");
    println!("cargo:rerun-if-changed=../calib-train/cpp/guarded.hpp");
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let libtorch = PathBuf::from(std::env::var("LIBTORCH").expect(
        "LIBTORCH is not set: run scripts/setup.sh, which lays libtorch out in .deps/ (.cargo/config.toml points LIBTORCH there)",
    ));
    let include = libtorch.join("include");
    if !PathBuf::from("/usr/include/gloo/config.h").exists() {
        panic!("Gloo's headers are missing: install Debian's libgloo-dev (scripts/setup.sh does)");
    }
    cc::Build::new()
        .cpp(true)
        .file("cpp/shim.cpp")
        .std("c++17")
        .define("USE_C10D_GLOO", None)
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        // The shims' shared error protocol.
        .include("../calib-train/cpp")
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        // libtorch's headers are not warning-clean under the default flags.
        .warnings(false)
        .flag("-w")
        .compile("calib_dist_shim");
}
