//! `rustai pull URL`: download a model file into the first model folder with a
//! progress bar; resumable and sha256-checked (the server's `/download` uses the
//! same code).

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use rustai_server::fetch::{fetch, DownloadRequest};

use crate::{
    cli::{Cli, PullArgs},
    setup,
};

pub(crate) fn run(cli: &Cli, args: &PullArgs) -> Result<()> {
    let dir = setup::model_dirs(cli).into_iter().next().context("no model folder")?;
    let req = DownloadRequest { url: args.url.clone(), sha256: args.sha256.clone(), name: args.name.clone() };
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(req.file_name()?);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let result = rt.block_on(fetch(&reqwest::Client::new(), &req, &dir, u64::MAX, |have, total| {
        if let Some(t) = total {
            bar.set_length(t);
        }
        bar.set_position(have);
    }));
    bar.finish_and_clear();
    let path = result?;
    let entry = rustai_core::Registry::entry_for_path(&path);
    match entry {
        Ok(e) => println!("{}: {} {} model `{}`", path.display(), e.format.as_str(), e.task.as_str(), e.id),
        Err(e) => println!("{}: downloaded, but {e}", path.display()),
    }
    Ok(())
}
