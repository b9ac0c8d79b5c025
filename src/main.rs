fn main() {
    std::process::exit(heph_selfupdate::run(std::env::args_os()));
}
