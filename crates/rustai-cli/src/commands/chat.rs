//! `rustai chat MODEL`: an interactive conversation on stdin/stdout.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Result;
use rustai_core::{
    abi::SamplingExtras,
    chat::{complete, Conversation, Turn},
};

use crate::{cli::{ChatArgs, Cli}, setup};

pub(crate) fn run(cli: &Cli, args: &ChatArgs) -> Result<()> {
    let mut params = setup::sampling(&args.sampling)?;
    let loaded = setup::load_model(cli, &args.model, args.model.threads, &mut params)?;
    let interactive = std::io::stdin().is_terminal();
    let system: Vec<Turn> = args.system.iter().map(|s| Turn::new("system", s.as_str())).collect();
    let mut history = system.clone();
    if interactive {
        eprintln!("Chatting with {} ({}). /bye quits, /reset forgets the conversation.", loaded.prepared.entry.id, loaded.model().plugin_id());
    }
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        if interactive {
            eprint!(">>> ");
            std::io::stderr().flush()?;
        }
        let Some(line) = lines.next().transpose()? else { break };
        let line = line.trim();
        match line {
            "" => continue,
            "/bye" | "/exit" | "/quit" => break,
            "/reset" => {
                history = system.clone();
                eprintln!("(conversation forgotten)");
                continue;
            }
            _ => {}
        }
        history.push(Turn::new("user", line));
        let mut reply = String::new();
        let mut out = std::io::stdout().lock();
        let conv = Conversation::new(history.clone());
        let done = complete(loaded.model(), &loaded.prepared.entry.id, &conv, params.clone(), &SamplingExtras::default(), |piece| {
            reply.push_str(piece);
            out.write_all(piece.as_bytes()).and_then(|()| out.flush()).is_ok()
        })
        .map(|(done, _)| done);
        loaded.record(done.as_ref());
        let done = done?;
        writeln!(out)?;
        if args.verbose {
            super::print_timings(&done);
        }
        history.push(Turn::new("assistant", reply));
    }
    Ok(())
}
