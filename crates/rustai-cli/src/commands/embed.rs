//! `rustai embed MODEL TEXT...`: sentence embeddings; cosine similarities of
//! every pair, or the vectors as JSON lines.

use anyhow::Result;

use crate::{
    cli::{Cli, EmbedArgs},
    setup,
};

/// Cosine similarity (the vectors are L2-normalised, so a dot product).
fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub(crate) fn run(cli: &Cli, args: &EmbedArgs) -> Result<()> {
    let engine = setup::engine(cli)?;
    let served = engine.embed(&args.model, &args.texts, true)?;
    let out = &served.output;
    for i in out.truncated.iter() {
        eprintln!("note: text {} was longer than the model's maximum and was truncated", i + 1);
    }
    if args.vectors {
        for (text, v) in args.texts.iter().zip(out.vectors.iter()) {
            println!("{}", serde_json::json!({ "text": text, "embedding": v.as_slice() }));
        }
        return Ok(());
    }
    eprintln!("{} ({} dimensions, plugin {})", served.entry.id, out.dimensions, served.plugin);
    if args.texts.len() == 1 {
        println!("{:?}", out.vectors[0].as_slice());
        return Ok(());
    }
    for i in 0..args.texts.len() {
        for j in i + 1..args.texts.len() {
            println!("{:>7.4}  {:?} ~ {:?}", cosine(&out.vectors[i], &out.vectors[j]), args.texts[i], args.texts[j]);
        }
    }
    Ok(())
}
