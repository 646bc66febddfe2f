fn main() {
    std::process::exit(hostca::cli::run());
}
