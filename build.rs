// The migrations are embedded at compile time (`embed_migrations!` in src/db/mod.rs):
// without this, a migration added to an already built tree is left out until some
// source file changes.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
