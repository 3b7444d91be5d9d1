//! `watchpost config reference`: the config reference (every section and
//! key with its type, default, allowed values and doc) as Markdown, printed
//! from the parser's own key tables ([`crate::config::reference`]).

use std::io::Write;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print the reference of every config section and key (Markdown).
    Reference,
}

pub async fn run(args: ConfigArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ConfigCommand::Reference => {
            let page = crate::config::reference::markdown();
            let mut out = std::io::stdout().lock();
            out.write_all(page.as_bytes())
                .and_then(|()| out.flush())
                .map_err(|e| anyhow::anyhow!("cannot write the reference to stdout: {e}"))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
