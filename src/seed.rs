//! Deterministic demo and benchmark data (placeholder while the generator is written).
#[derive(clap::Args, Debug, Clone)]
pub struct SeedArgs {}
pub fn run(_url: &str, _args: &SeedArgs) -> anyhow::Result<String> { Ok(String::new()) }
