//! `rustai bench MODEL`: prompt-processing (ppN) and generation (tgN) speed,
//! measured the way llama.cpp's `llama-bench` does, so results can be compared.
//!
//! - ppN: a prompt of N random tokens is evaluated; speed = N / prompt time.
//! - tgN: starting from one token, N tokens are generated greedily with
//!   end-of-generation ignored; speed = N / generation time.
//!
//! Each test runs once to warm up, then `-r` times; mean ± sample standard deviation.
//! `--serving` measures a server instead (see `bench_serving`).

use anyhow::Result;
use rustai_core::abi::{GenerateRequest, RString, SamplingParams};

use crate::{
    cli::{BenchArgs, Cli},
    commands::plugins::human_size,
    setup,
};

/// xorshift64*: enough to draw token ids; not worth a dependency.
struct TokenRng(u64);

impl TokenRng {
    fn next_below(&mut self, n: u32) -> i32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as i32 % n.max(1) as i32
    }
}

fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = if xs.len() > 1 { xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

pub(crate) fn run(cli: &Cli, args: &BenchArgs) -> Result<()> {
    let threads_list = if args.threads_list.is_empty() { vec![args.model.threads] } else { args.threads_list.clone() };
    let mut header_done = false;
    for &threads in &threads_list {
        // One slot, as llama-bench's one sequence: no other slot's cache shares the context.
        let loaded = setup::load_model_with(cli, &args.model, threads, Some(1), &mut SamplingParams::greedy())?;
        let info = loaded.model().info().clone();
        let threads_shown = if threads == 0 {
            rustai_core::abi::cpu::usable_cores()
        } else {
            threads
        };
        if !header_done {
            println!("| model | size | params | plugin | threads | test | t/s |");
            println!("| --- | ---: | ---: | --- | ---: | ---: | ---: |");
            header_done = true;
        }
        let mut rng = TokenRng(0x9e37_79b9_7f4a_7c15);
        let bos = loaded.model().tokenize("", true)?.first().copied().unwrap_or(0);
        let mut tests = Vec::new();
        tests.extend(args.n_prompt.iter().filter(|&&n| n > 0).map(|&n| (format!("pp{n}"), n, 0)));
        tests.extend(args.n_gen.iter().filter(|&&n| n > 0).map(|&n| (format!("tg{n}"), 0, n)));
        for (name, n_prompt, n_gen) in tests {
            let mut speeds = Vec::new();
            for rep in 0..=args.repetitions {
                let prompt: Vec<i32> = if n_prompt > 0 {
                    (0..n_prompt).map(|_| rng.next_below(info.vocab_size)).collect()
                } else {
                    vec![bos]
                };
                let params = SamplingParams {
                    max_tokens: n_gen.max(1),
                    ignore_eos: true,
                    stop: Default::default(),
                    ..SamplingParams::greedy()
                };
                let request = GenerateRequest {
                    prompt: RString::new(),
                    prompt_tokens: prompt.into(),
                    add_special: false,
                    params,
                };
                let done = loaded.model().generate(&request, |_| true);
                loaded.record(done.as_ref());
                let done = done?;
                if rep == 0 {
                    continue; // warm-up
                }
                speeds.push(if n_prompt > 0 { done.timings.prompt_tokens_per_s } else { done.timings.tokens_per_s });
            }
            let (mean, std) = mean_std(&speeds);
            println!(
                "| {} {} | {} | {:.1}M | {} | {} | {} | {:.2} ± {:.2} |",
                info.architecture,
                info.quantization,
                human_size(info.size_bytes),
                info.parameters as f64 / 1e6,
                loaded.model().plugin_id(),
                threads_shown,
                name,
                mean,
                std
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics() {
        let (m, s) = mean_std(&[1.0, 2.0, 3.0]);
        assert!((m - 2.0).abs() < 1e-12);
        assert!((s - 1.0).abs() < 1e-12);
        assert_eq!(mean_std(&[5.0]), (5.0, 0.0));
    }

    #[test]
    fn tokens_stay_in_vocabulary() {
        let mut rng = TokenRng(1);
        assert!((0..10_000).all(|_| (0..49_152).contains(&rng.next_below(49_152))));
    }
}
