//! `watchpost generate DIR` (hidden): the man page and the shell
//! completions, made from the command-line definition itself so they
//! never drift from it. The Debian package (`cargo xtask dist`) ships them.

use clap::CommandFactory;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    /// Where to write `watchpost.1` and the bash, zsh and fish completions.
    pub dir: PathBuf,
}

pub async fn run(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    let dir = &args.dir;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let command = super::Cli::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone()).render(&mut page)?;
    let man = dir.join("watchpost.1");
    std::fs::write(&man, page).with_context(|| format!("cannot write {}", man.display()))?;
    for shell in [
        clap_complete::Shell::Bash,
        clap_complete::Shell::Zsh,
        clap_complete::Shell::Fish,
    ] {
        let path = clap_complete::generate_to(shell, &mut command.clone(), "watchpost", dir)
            .with_context(|| format!("cannot write the {shell} completion in {}", dir.display()))?;
        eprintln!("{}", path.display());
    }
    eprintln!("{}", man.display());
    Ok(ExitCode::SUCCESS)
}
