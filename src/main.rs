fn main() {
    std::process::exit(mlrun::main_entry());
}
